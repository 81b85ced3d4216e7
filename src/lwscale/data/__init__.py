"""Layer 4, data: corpora and tokenizers, synthetic teacher data, the user's files and
``lwscale data prepare``. Its face is ``Dataset`` and ``load_dataset``, loaded on first use so
that the torch-free parts (corpus, prepare) stay fast to import."""

__all__ = ["Dataset", "load_dataset"]


def __getattr__(name: str):
    if name == "Dataset":
        from lwscale.data.dataset import Dataset

        return Dataset
    if name == "load_dataset":
        from lwscale.data.load import load_dataset

        return load_dataset
    raise AttributeError(f"module 'lwscale.data' has no attribute {name!r}")
