"""Sweep data from the user: text files, or a token file from ``lwscale data prepare``.

    data: {source: tokens, paths: [data/my-corpus]}            # a prepared directory (manifest.json)
    data: {source: tokens, paths: [tokens.npy]}                # or a .npy / .bin (uint16/uint32) file
    data: {source: text, paths: ["notes/*.txt"], tokenizer: bpe, vocab_size: 4096}

Token files are memory-mapped (``numpy.memmap`` / ``np.load(mmap_mode="r")``): a corpus of
any size costs no memory up front. Text sources are prepared once (streaming, as ``data
prepare`` does) into the cache, keyed by each file's path, size and modification time and
the tokenizer settings, then read the same way.

The validation set is the *last* tokens of the stream, exactly as many as ``eval_tokens``
needs, and training batches are drawn from the tokens before them, so the two never overlap.

Every token id is checked once at load (``check_token_ids``: a max over the memory map,
chunk by chunk, cached by the file's path, size and modification time): an id outside the
vocabulary would fail a cell mid-training, and a uint32 file read as uint16 (every second
token 0) would train on garbage without a word.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from lwscale.core.errors import UserError
from lwscale.core.files import temp_dir
from lwscale.core.log import quiet
from lwscale.data.corpus import DATA_VERSION, DataError, cache_dir, content_digest
from lwscale.data.dataset import Dataset
from lwscale.data.prepare import expand_inputs, prepare

TOKEN_DTYPES = {"uint16": np.uint16, "uint32": np.uint32}
CHECK_CHUNK = 1 << 24  # tokens per chunk of the load-time id check (even: chunks keep the token parity)


class SourceError(DataError, UserError):
    """A user data source that cannot be read as given."""


def _token_path(data_spec) -> tuple[Path, dict | None]:
    """The token file and its manifest (None for a bare file)."""
    p = Path(data_spec.paths[0]).expanduser()
    if p.is_dir():
        mpath = p / "manifest.json"
        if not mpath.exists():
            raise SourceError(
                f"data.paths: {p} is a directory without manifest.json (make it with `lwscale data prepare`)"
            )
        manifest = _read_manifest(mpath)
        return _inside(p, manifest.get("tokens_file", "tokens.bin"), mpath), manifest
    if not p.exists():
        raise SourceError(f"data.paths: token file not found: {p}")
    mpath = p.parent / "manifest.json"
    if mpath.exists():
        manifest = _read_manifest(mpath)
        if manifest.get("tokens_file") == p.name:
            return p, manifest
    return p, None


def _read_manifest(path: Path) -> dict:
    """A manifest.json, checked for what a sweep reads from it."""
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # a UnicodeDecodeError is a ValueError
        why = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        raise SourceError(f"data.paths: cannot read {path} ({why}); make it with `lwscale data prepare`") from None
    if not isinstance(manifest, dict):
        raise SourceError(f"data.paths: {path} is not a manifest (a JSON object); make it with `lwscale data prepare`")
    vocab = manifest.get("vocab_size")
    if not isinstance(vocab, int) or isinstance(vocab, bool) or not 2 <= vocab <= 2**32:
        raise SourceError(f"data.paths: {path}: vocab_size must be a whole number from 2 to 2**32, got {vocab!r}")
    if manifest.get("dtype") is not None and manifest["dtype"] not in TOKEN_DTYPES:
        raise SourceError(f"data.paths: {path}: dtype {manifest['dtype']!r} is not a token dtype (uint16 or uint32)")
    return manifest


def _inside(folder: Path, name, manifest_path: Path) -> Path:
    """The token file a manifest names: a plain file name in the manifest's own directory
    (a manifest must not make a sweep read files elsewhere, such as ../../etc/passwd)."""
    if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise SourceError(
            f"data.paths: {manifest_path}: tokens_file {name!r} is outside its directory; it must be "
            "the name of a file beside manifest.json"
        )
    return folder / name


def open_tokens(data_spec) -> tuple[np.ndarray, int, str]:
    """The memory-mapped token stream, the vocabulary size and a fingerprint."""
    path, manifest = _token_path(data_spec)
    if path.suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r")
        except (ValueError, EOFError, OSError) as exc:  # empty, truncated, object dtype (not mappable)
            why = str(exc).splitlines()[0] if str(exc) else "empty or truncated"
            raise SourceError(
                f"data.paths: cannot memory-map {path} as tokens ({why}); save a uint16 or uint32 array with numpy.save"
            ) from None
        if arr.ndim != 1:
            arr = arr.reshape(-1)
    else:
        name = (manifest or {}).get("dtype") or data_spec.token_dtype
        if name is None:
            raise SourceError(
                f"data.paths: {path} has no manifest.json beside it; set data.token_dtype "
                "(uint16 or uint32) to read a bare .bin file"
            )
        dtype = np.dtype(TOKEN_DTYPES[name])
        size = path.stat().st_size
        if size == 0 or size % dtype.itemsize:
            raise SourceError(
                f"data.paths: {path} has {size} bytes, not a whole number of {name} tokens "
                f"(of {dtype.itemsize} bytes; check data.token_dtype or the manifest's dtype)"
            )
        arr = np.memmap(path, dtype=dtype, mode="r")
    if arr.dtype.name not in TOKEN_DTYPES:
        raise SourceError(f"data.paths: {path} holds {arr.dtype.name} tokens; use uint16 or uint32")
    vocab = int(manifest["vocab_size"]) if manifest else data_spec.vocab_size
    stat = path.stat()
    fp = content_digest(
        DATA_VERSION,
        "tokens",
        manifest or {"path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns},
    )
    return arr, vocab, fp


def source_vocab_size(data_spec) -> int:
    """The vocabulary a user source yields (for the model's embedding)."""
    if data_spec.source == "tokens":
        return open_tokens(data_spec)[1]
    return 256 if data_spec.tokenizer == "bytes" else data_spec.vocab_size


def prepared_text(data_spec, log: Callable[[str], None] = quiet) -> Path:
    """Prepare a text source into the cache once (streaming) and return its directory."""
    sources = expand_inputs(list(data_spec.paths), "text")
    key = content_digest(
        DATA_VERSION,
        "text",
        data_spec.tokenizer,
        data_spec.vocab_size,
        [(str(s.path.resolve()), s.size, s.path.stat().st_mtime_ns) for s in sources],
    )
    out = cache_dir() / f"user-text-{key}"
    if not (out / "manifest.json").exists():
        log(f"tokenizing {len(sources)} text file(s) into {out} (cached for later runs)")
        # into a private folder renamed into place: workers of one sweep (runner gpus/slurm)
        # that prepare the same text at once never write into each other's files
        tmp = Path(temp_dir(out.parent, prefix=f".{out.name}."))  # the umask applies, unlike mkdtemp's 0700
        try:
            prepare(
                [str(s.path) for s in sources],
                tmp,
                vocab_size=data_spec.vocab_size,
                fmt="text",
                bytes_tokens=data_spec.tokenizer == "bytes",
                warn=lambda msg: log(f"warning: {msg}"),
            )
            try:
                os.rename(tmp, out)
            except OSError:  # another worker finished first (its copy is the same), or a stale half
                if not (out / "manifest.json").exists():
                    shutil.rmtree(out)
                    os.rename(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_user_dataset(
    data_spec, seq_len: int, batch_size: int, n_val: int, log: Callable[[str], None] = quiet
) -> Dataset:
    """The Dataset of a ``text`` or ``tokens`` source: validation = the stream's last tokens."""
    if data_spec.source == "text":
        data_spec = data_spec.model_copy(update={"source": "tokens", "paths": [str(prepared_text(data_spec, log))]})
    tokens, vocab, fp = open_tokens(data_spec)
    need = n_val * (seq_len + 1)
    if len(tokens) < need + seq_len + 2:
        raise SourceError(
            f"data.paths: {len(tokens)} tokens are too few: the validation set alone needs {need} "
            f"(eval_tokens), and training at least one more sequence of {seq_len + 1}"
        )
    check_token_ids(tokens, vocab, _token_path(data_spec)[0], log)
    val = np.asarray(tokens[len(tokens) - need :]).reshape(n_val, seq_len + 1)
    return Dataset(vocab, seq_len, batch_size, val, fp, _text=tokens[: len(tokens) - need])


def check_token_ids(tokens: np.ndarray, vocab: int, path: Path, log: Callable[[str], None] = quiet) -> None:
    """Refuse a token stream with an id outside ``vocab``, or a uint16 stream whose every second
    token is 0 (a uint32 file of small ids read as uint16). Streams the memory map in chunks of
    CHECK_CHUNK tokens; a file that passed is remembered (in the cache) by its state."""
    path = Path(path)
    st = path.stat()
    key = content_digest(
        DATA_VERSION, "token-check", str(path.resolve()), st.st_size, st.st_mtime_ns, tokens.dtype.name, int(vocab)
    )
    mark = cache_dir() / "token-checks" / key
    if mark.exists():
        return
    if len(tokens) > 64 * CHECK_CHUNK:
        log(f"checking the token ids of {path} ({len(tokens):,} tokens; once per file)")
    top = odd_top = 0
    for i in range(0, len(tokens), CHECK_CHUNK):
        chunk = np.asarray(tokens[i : i + CHECK_CHUNK])
        top = max(top, int(chunk.max()))
        if len(chunk) > 1:
            odd_top = max(odd_top, int(chunk[1::2].max()))
    if top >= vocab:
        raise SourceError(
            f"data.paths: {path} holds token id {top}, outside the vocabulary of {vocab} (set "
            "data.vocab_size, check data.token_dtype, or prepare the file with `lwscale data prepare`)"
        )
    if tokens.dtype == np.uint16 and len(tokens) >= 64 and odd_top == 0 and top > 0:
        raise SourceError(
            f"data.paths: every second token is 0 in {path} read as uint16: it looks like uint32 "
            "tokens (set data.token_dtype: uint32, or the manifest's dtype)"
        )
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()
    except OSError:  # an unwritable cache costs the check next time, nothing else
        pass
