"""`lwscale data prepare` on inputs that are empty, not UTF-8, or one enormous line, and a
prepare that fails half-way: refused or warned in one line, nothing half-written left."""

import json
import tracemalloc

import numpy as np
import pytest
from conftest import run_cli


def _prepare(tmp_path, *inputs, extra=("--bytes",)):
    return run_cli(["data", "prepare", *map(str, inputs), "--out", tmp_path / "out", *extra])


@pytest.mark.parametrize("extra", [("--bytes",), ("--vocab-size", "300")])
def test_an_empty_input_is_refused(tmp_path, extra):
    (tmp_path / "empty.txt").write_bytes(b"")
    code, out, err = _prepare(tmp_path, tmp_path / "empty.txt", extra=extra)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no text" in err, (code, out, err)
    assert not (tmp_path / "out" / "manifest.json").exists() and not (tmp_path / "out" / "tokens.bin").exists()
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_a_prepare_that_fails_half_way_leaves_no_temporary_file(tmp_path, monkeypatch):
    from lwscale.data import prepare as data_prepare

    (tmp_path / "a.txt").write_text("hello world\n" * 50_000)
    calls = []

    def encode_then_fail(self, texts):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("the tokenizer failed")
        return [list(t.encode("utf-8")) for t in texts]

    monkeypatch.setattr(data_prepare.BytesEncoder, "encode_batch", encode_then_fail)
    monkeypatch.setattr(data_prepare, "BATCH_BYTES", 1 << 16)
    with pytest.raises(RuntimeError):
        data_prepare.prepare([str(tmp_path / "a.txt")], tmp_path / "out", bytes_tokens=True)
    assert len(calls) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_latin1_input_is_counted_and_warned_and_binary_input_refused(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("Ça coûte très cher à Noël.\n".encode("latin-1") * 40)
    code, out, err = _prepare(tmp_path, tmp_path / "latin1.txt")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "warning" in flat and "latin1.txt" in flat and "200 bytes are not UTF-8" in flat, out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["sources"][0]["replaced_bytes"] == 200

    (tmp_path / "blob.txt").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    code, out, err = run_cli(["data", "prepare", tmp_path / "blob.txt", "--bytes", "--out", tmp_path / "out2"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not UTF-8 text" in err, (code, out, err)
    assert not (tmp_path / "out2" / "manifest.json").exists() and not list((tmp_path / "out2").glob("*.tmp"))


def test_jsonl_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "d.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    code, out, err = run_cli(
        ["data", "prepare", tmp_path / "d.jsonl", "--field", "text", "--bytes", "--out", tmp_path / "out"]
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "d.jsonl:1" in err and "UTF-8" in err, err


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_single_enormous_line_streams_like_the_same_text_in_lines(tmp_path):
    """Memory follows the piece and batch sizes, not the longest line."""
    from lwscale.data.prepare import prepare

    words = np.random.default_rng(0).choice(["alpha", "beta", "gamma", "delta", "epsilon"], 800_000)
    (tmp_path / "one.txt").write_text(" ".join(words))  # about 4.6 MB, no newline
    (tmp_path / "lines.txt").write_text("\n".join(" ".join(words[i : i + 12]) for i in range(0, len(words), 12)))
    one = _peak(lambda: prepare([str(tmp_path / "one.txt")], tmp_path / "o1", bytes_tokens=True))
    lines = _peak(lambda: prepare([str(tmp_path / "lines.txt")], tmp_path / "o2", bytes_tokens=True))
    assert one < 1.5 * lines, (one, lines)
    a = np.fromfile(tmp_path / "o1" / "tokens.bin", dtype=np.uint16)
    assert a.size == (tmp_path / "one.txt").stat().st_size + 2  # every byte, and the document separator
