import os

if "OMP_WAIT_POLICY" not in os.environ:  # as `import lwscale` does; torch is imported below first
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import pytest  # noqa: E402
import torch  # noqa: E402

from lwscale.model.config import ModelConfig

torch.set_num_threads(2)

TINY = dict(vocab_size=256, base_width=32, depth=2, head_dim=16, ffn_mult=2.75, seq_len=32)


def tiny_cfg(width: int = 32, n_stack: int = 1, **kw) -> ModelConfig:
    return ModelConfig(**{**TINY, "width": width, "n_stack": n_stack, **kw})


@pytest.fixture
def rand_tokens():
    g = torch.Generator().manual_seed(1234)

    def make(K: int, B: int = 4, T: int = 32, V: int = 256, steps: int = 10):
        # one fixed batch, repeated: the cells can memorise it, so every loss falls
        return torch.randint(0, V, (1, 1, B, T + 1), generator=g).expand(steps, K, B, T + 1)

    return make


# ---- the shared tiny sweep: trained once per pytest run --------------------------------------
import os  # noqa: E402
import sys  # noqa: E402

import yaml  # noqa: E402

TINY_SPEC = {
    "name": "tiny",
    "model": {"widths": [32, 64], "depth": 1, "head_dim": 16, "seq_len": 32},
    "data": {"source": "sotu", "tokenizer": "bytes"},
    "train": {
        "steps": 20,
        "batch_size": 4,
        "warmup": 2,
        "eval_interval": 10,
        "eval_tokens": 1024,
        "log_interval": 5,
        "seeds": [0, 1],
    },
    "grid": {"eta": [2**-7, 2**-5], "wd": [0.1, 1.0]},
    "rules": ["sqrt-wd", "const-wd"],
}


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory):
    """A private data cache, so tests never touch ~/.cache."""
    os.environ["LWSCALE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


def write_spec(path, spec: dict):
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


DROPOUT_LM = """
import torch.nn as nn


class DropLM(nn.Module):
    def __init__(self, width, vocab_size):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, width)
        self.fc = nn.Linear(width, width)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(width, vocab_size, bias=False)

    def forward(self, idx):
        return self.head(self.drop(self.fc(self.tok(idx)).relu()))


def build(width, vocab_size=256):
    return DropLM(width, vocab_size)
"""


def dropout_factory_spec(tmp_path, monkeypatch, module: str, **train) -> dict:
    """A one-cell spec of a model.factory model with dropout (it draws from torch's global
    RNG), written to tmp_path as ``module`` and importable; ``train`` adds to its train section."""
    (tmp_path / f"{module}.py").write_text(DROPOUT_LM)
    monkeypatch.syspath_prepend(str(tmp_path))
    return {
        "name": "drop",
        "model": {"factory": f"{module}:build", "widths": [32], "seq_len": 16},
        "data": {"source": "sotu", "tokenizer": "bytes"},
        "train": {"batch_size": 4, "warmup": 1, "eval_tokens": 256, **train},
        "grid": {"eta": [0.01], "wd": [0.1]},
        "rules": ["sqrt-wd"],
    }


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny sweep above, run once through the library API; returns its RunResult."""
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    out = tmp_path_factory.mktemp("runs")
    return run_sweep(parse_spec(TINY_SPEC), out_dir=out)


def run_cli(args, monkeypatch=None, env: dict | None = None):
    """Run ``lwscale ARGS`` in this process through the real entry point; returns
    (exit code, stdout, stderr) via capfd-free redirection."""
    import contextlib
    import io

    from lwscale.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            sys.argv = ["lwscale", *map(str, args)]
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, out.getvalue(), err.getvalue()
