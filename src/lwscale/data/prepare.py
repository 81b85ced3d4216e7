"""``lwscale data prepare``: text files, JSONL or Parquet -> one token file a sweep memory-maps.

Inputs stream: text files are read in pieces of about 64 KB cut at line ends (a line longer
than a piece is cut at a space, so one enormous line costs no more memory than many short
ones), JSONL line by line
(one document per line, its ``field``), Parquet in record batches of one ``column``
(pyarrow, optional), a Hugging Face dataset (``datasets``, optional) row by row. Nothing
holds the corpus in memory, so inputs larger than memory work; peak memory is the
tokenizer's and one batch of pieces.

Each input is read once with a given tokenizer or bytes, twice when a BPE is trained on it
(training, then tokenizing). Text and JSONL files are hashed as they are read, so the
manifest's sha256 costs no pass of its own, and a file whose bytes differ between the two
passes is an error. Parquet files (read by row group, out of byte order) are memory-mapped:
each pass hashes the mapping, then pyarrow parses the same pages (from the page cache, not
a second read of the file), with the same check between passes. The mapped pages are the
OS's page cache (reclaimed under pressure), not memory the process holds.

The tokenizer is our byte-level BPE (trained on the inputs in a first streaming pass, with
HF ``tokenizers``), a given ``tokenizer.json``, or raw bytes. Documents are separated by the
end-of-text token (a blank line for bytes). Output, in ``out``:

    tokens.bin      the token stream, uint16 if the vocabulary fits in 65536, else uint32
    tokenizer.json  the tokenizer (not for bytes)
    manifest.json   sources (path, bytes, sha256), token count, vocab size, dtype, tokenizer

``manifest.json`` is written last: its presence marks a complete output. A prepare that
fails leaves no temporary token file, and inputs that hold no text are refused.

Text is UTF-8. Bytes that are not become U+FFFD; they are counted per file (the manifest's
``replaced_bytes``) and reported through ``warn``, and a file where more than a fifth of the
bytes are not UTF-8 (binary, or another encoding throughout) is refused.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import hashlib
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from lwscale.core.errors import UserError
from lwscale.core.files import atomic_write, atomic_write_text, sha256_file
from lwscale.core.log import quiet
from lwscale.core.version import __version__
from lwscale.data.corpus import EOT, token_dtype_for, train_bpe

PIECE_BYTES = 64 << 10  # text files are cut at line ends into pieces of about this size
BATCH_BYTES = 1 << 20  # pieces encoded together (the tokenizer needs ~100x this in memory)
FORMATS = ("auto", "text", "jsonl", "parquet")
MAX_REPLACED = 0.2  # a text file with more bytes than this share not UTF-8 is refused
MANIFEST_FORMAT = "lwscale-tokens/1"

Advance = Callable[[int], None]


class PrepareError(UserError):
    """Inputs or options that ``data prepare`` cannot use."""


@dataclass
class Source:
    path: Path
    fmt: str
    size: int
    meta: dict = field(default_factory=dict)
    sha256: str | None = None  # set by the first pass that reads the file to its end
    replaced: int = 0  # bytes that were not UTF-8 (each became U+FFFD) in the last pass


def expand_inputs(patterns: list[str], fmt: str = "auto") -> list[Source]:
    """Files named by paths or globs (``**`` recursive), each with its format, in sorted order."""
    if fmt not in FORMATS:
        raise PrepareError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    files: list[Path] = []
    for pat in patterns:
        hits = sorted(glob.glob(os.path.expanduser(pat), recursive=True)) if glob.has_magic(pat) else [pat]
        hits = [h for h in hits if not Path(h).is_dir()]
        if not hits or not Path(hits[0]).exists():
            raise PrepareError(f"no input file matches {pat!r}")
        files.extend(Path(h) for h in hits)
    files = list(dict.fromkeys(files))
    return [Source(f, _format_of(f, fmt), _data_size(f)) for f in files]


def _gzipped(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def _data_size(path: Path) -> int:
    """Bytes the reader will see: a gzip file's uncompressed size (its trailer holds it, mod
    2**32), so the progress bar counts what is read; the file's size otherwise."""
    size = path.stat().st_size
    if _gzipped(path) and size >= 18:
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            return int.from_bytes(f.read(4), "little") or size
    return size


def _decoded(raw: _HashingFile, path: Path) -> io.BufferedIOBase:
    """The bytes of a file as its reader needs them: gunzipped for .gz (the hash stays that of
    the file on disk, as the manifest's sha256 says)."""
    buffered = io.BufferedReader(raw)
    return gzip.GzipFile(fileobj=buffered, mode="rb") if _gzipped(path) else buffered


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".json.gz")) or path.suffix.lower() == ".json":
        return "jsonl"
    if path.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    return "text"


class _HashingFile(io.RawIOBase):
    """A file opened for binary reading that hashes every byte read from it."""

    def __init__(self, path: Path):
        self._f = open(path, "rb", buffering=0)
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        self.hash.update(memoryview(b)[:n])
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def _read_to_end(src: Source, digest: str) -> None:
    """Record the hash of a file just read whole; a later pass must find the same bytes."""
    if src.sha256 is None:
        src.sha256 = digest
    elif src.sha256 != digest:
        raise PrepareError(
            f"{src.path} changed while it was being prepared (the BPE was trained on other "
            "bytes than were tokenized): run again once it is written"
        )


# ---- streaming readers: (text, end_of_document) pieces ---------------------------------------
_REPLACED = [0]  # bytes the "lwscale-count" error handler replaced so far


def _count_replacement(exc: UnicodeError):
    """Decode errors as errors="replace" does, counting the bytes replaced."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _REPLACED[0] += exc.end - exc.start
    return "\ufffd", exc.end


codecs.register_error("lwscale-count", _count_replacement)


def _text_pieces(src: Source, advance: Advance) -> Iterator[tuple[str, bool]]:
    buf: list[str] = []
    size = 0
    carry = ""
    raw = _HashingFile(src.path)
    replaced_before = _REPLACED[0]
    with io.TextIOWrapper(_decoded(raw, src.path), encoding="utf-8", errors="lwscale-count", newline="") as f:
        while True:
            line = f.readline(PIECE_BYTES)  # at most a piece: a line longer than that comes in parts
            if not line and not carry:
                break
            line, carry = carry + line, ""
            if line and not line.endswith("\n") and len(line) >= PIECE_BYTES:
                cut = max(line.rfind(" "), line.rfind("\t"))  # a part of a long line ends at a space
                if cut > 0:
                    line, carry = line[: cut + 1], line[cut + 1 :]
            buf.append(line)
            size += len(line)
            if size >= PIECE_BYTES:
                advance(size)
                yield "".join(buf), False
                buf, size = [], 0
        _read_to_end(src, raw.hash.hexdigest())
    src.replaced = _REPLACED[0] - replaced_before
    if src.replaced > MAX_REPLACED * max(src.size, 1):
        raise PrepareError(
            f"{src.path}: {src.replaced:,} of its {src.size:,} bytes are not UTF-8 text: is it a binary "
            "file? (convert text in another encoding first, e.g. iconv -f latin1 -t utf-8)"
        )
    advance(size)
    yield "".join(buf), True


def _jsonl_pieces(src: Source, key: str | None, advance: Advance) -> Iterator[tuple[str, bool]]:
    if not key:
        raise PrepareError(f"{src.path}: JSONL input needs --field NAME (the key holding each document's text)")
    hashing = _HashingFile(src.path)
    with _decoded(hashing, src.path) as f:
        for n, raw in enumerate(f, 1):
            advance(len(raw))
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise PrepareError(
                    f"{src.path}:{n}: not UTF-8 (byte {exc.start + 1} of the line); JSON must be UTF-8"
                ) from None
            except json.JSONDecodeError as exc:
                raise PrepareError(f"{src.path}:{n}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise PrepareError(f"{src.path}:{n}: JSON nested too deeply") from None
            if not isinstance(obj, dict) or key not in obj:
                raise PrepareError(f"{src.path}:{n}: no field {key!r} in this record")
            if not isinstance(obj[key], str):
                raise PrepareError(f"{src.path}:{n}: field {key!r} is {type(obj[key]).__name__}, not text")
            yield obj[key], True
        _read_to_end(src, hashing.hash.hexdigest())


def _parquet_pieces(src: Source, column: str | None, advance: Advance) -> Iterator[tuple[str, bool]]:
    if not column:
        raise PrepareError(f"{src.path}: Parquet input needs --column NAME (the column holding the text)")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise PrepareError("Parquet input needs pyarrow: pip install 'lwscale[parquet]'") from None
    try:  # one read of the file: hashed from the mapping, which pyarrow then parses
        mapped = pa.memory_map(str(src.path))
    except Exception as exc:  # pyarrow raises several types for a file it cannot map
        raise PrepareError(f"{src.path}: cannot read as Parquet ({exc})") from None
    with mapped:
        digest = hashlib.sha256(memoryview(mapped.read_buffer())).hexdigest()
        try:
            pf = pq.ParquetFile(mapped)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise PrepareError(f"{src.path}: cannot read as Parquet ({exc})") from None
        if column not in pf.schema_arrow.names:
            raise PrepareError(f"{src.path}: no column {column!r} (columns: {', '.join(pf.schema_arrow.names)})")
        _read_to_end(src, digest)
        rows = max(pf.metadata.num_rows, 1)
        for batch in pf.iter_batches(columns=[column], batch_size=1024):
            advance(int(src.size * batch.num_rows / rows))
            for value in batch.column(0).to_pylist():
                if value is not None:
                    yield str(value), True


def _hf_pieces(name: str, split: str, key: str | None) -> Iterator[tuple[str, bool]]:
    if not key:
        raise PrepareError("--hf needs --field NAME (the column holding the text)")
    try:
        import datasets  # optional: only this path uses it, and never offline unless cached
    except ImportError:
        raise PrepareError(
            "--hf needs the Hugging Face 'datasets' package (pip install datasets); lwscale needs it for nothing else"
        ) from None
    path, _, config = name.partition(":")
    for row in datasets.load_dataset(path, config or None, split=split, streaming=True):
        yield str(row[key]), True


def pieces(sources: list[Source], field_: str | None, column: str | None, advance: Advance):
    for src in sources:
        try:
            if src.fmt == "jsonl":
                yield from _jsonl_pieces(src, field_, advance)
            elif src.fmt == "parquet":
                yield from _parquet_pieces(src, column, advance)
            else:
                yield from _text_pieces(src, advance)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise PrepareError(f"{src.path}: not a complete gzip file ({exc})") from None


# ---- tokenizers ------------------------------------------------------------------------------
class BytesEncoder:
    """Raw UTF-8 bytes as tokens (vocab 256); documents separated by a blank line."""

    vocab_size = 256

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(t.encode("utf-8")) for t in texts]

    def separator(self) -> list[int]:
        return list(b"\n\n")


class BPEEncoder:
    def __init__(self, tok):
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()
        self.eot = tok.token_to_id(EOT)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts)]

    def separator(self) -> list[int]:
        return [] if self.eot is None else [self.eot]


# ---- the whole job ---------------------------------------------------------------------------
@dataclass
class Prepared:
    out: Path
    tokens: int
    vocab_size: int
    dtype: str
    manifest: dict


def prepare(
    inputs: list[str],
    out: str | Path,
    *,
    field: str | None = None,
    column: str | None = None,
    tokenizer: str | Path | None = None,
    vocab_size: int = 4096,
    fmt: str = "auto",
    hf: str | None = None,
    hf_split: str = "train",
    bytes_tokens: bool = False,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    warn: Callable[[str], None] = quiet,
) -> Prepared:
    """Tokenize ``inputs`` (paths or globs; or ``hf="name[:config]"``) into ``out``.

    ``progress(label, total_bytes)`` returns an ``advance(nbytes)`` callback, called as input
    is read (the CLI draws a Rich bar with it). ``warn`` is given one line per input file
    that is not all UTF-8.
    """
    out = Path(out)
    if bool(inputs) == bool(hf):
        raise PrepareError("give input files (paths or globs) or --hf NAME, not both and not neither")
    if tokenizer is not None and bytes_tokens:
        raise PrepareError("give --tokenizer or --bytes, not both")
    sources = expand_inputs(inputs, fmt) if inputs else []
    if out.exists() and not out.is_dir():
        raise PrepareError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    total = sum(s.size for s in sources)
    progress = progress or (lambda label, n: lambda k: None)

    def stream(label: str):
        if hf:
            return _hf_pieces(hf, hf_split, field)
        return pieces(sources, field, column, progress(label, total))

    enc, tok_info = _encoder(out, stream, tokenizer, vocab_size, bytes_tokens)
    dtype = token_dtype_for(enc.vocab_size)
    n_tokens, n_docs = _write_tokens(out / "tokens.bin", enc, dtype, stream("tokenizing"), sources)
    for s in sources:
        if s.replaced:
            warn(
                f"{s.path}: {s.replaced:,} bytes are not UTF-8 and became U+FFFD (is it Latin-1? convert it "
                "with iconv -f latin1 -t utf-8)"
            )
    src_info = (
        [{"hf": hf, "split": hf_split, "field": field}]
        if hf
        else [
            {"path": str(s.path), "format": s.fmt, "bytes": s.size, "sha256": s.sha256 or sha256_file(s.path)}
            | ({"field": field} if s.fmt == "jsonl" else {})
            | ({"column": column} if s.fmt == "parquet" else {})
            | ({"replaced_bytes": s.replaced} if s.replaced else {})
            for s in sources
        ]
    )
    manifest = {
        "format": MANIFEST_FORMAT,
        "tokens_file": "tokens.bin",
        "dtype": np.dtype(dtype).name,
        "token_count": n_tokens,
        "documents": n_docs,
        "vocab_size": enc.vocab_size,
        "tokenizer": tok_info,
        "sources": src_info,
        "lwscale_version": __version__,
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))  # last: it marks a whole folder
    return Prepared(out, n_tokens, enc.vocab_size, manifest["dtype"], manifest)


def _encoder(out: Path, stream, tokenizer, vocab_size: int, bytes_tokens: bool):
    """The encoder and the manifest's ``tokenizer`` entry: bytes, the given tokenizer (copied to
    ``out``), or a BPE trained on a first streaming pass over the inputs (saved to ``out``)."""
    if bytes_tokens:
        return BytesEncoder(), {"kind": "bytes"}
    from tokenizers import Tokenizer

    if tokenizer is not None:
        tpath = Path(tokenizer)
        try:
            tok = Tokenizer.from_file(str(tpath))
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise PrepareError(f"--tokenizer {tpath}: cannot load ({str(exc).splitlines()[0]})") from None
        if tpath.resolve() != (out / "tokenizer.json").resolve():
            data = tpath.read_bytes()
            atomic_write(out / "tokenizer.json", lambda f: f.write(data), binary=True)
        tok_info = {"kind": "given", "from": str(tpath)}
    else:
        if vocab_size < 257:
            raise PrepareError(f"--vocab-size must exceed 256 for a byte-level BPE, got {vocab_size}")
        tok = train_bpe((text for text, _ in stream("training BPE")), vocab_size)
        atomic_write_text(out / "tokenizer.json", tok.to_str(pretty=True))  # the bytes Tokenizer.save writes
        tok_info = {"kind": "bpe", "vocab_size_asked": vocab_size}
    enc = BPEEncoder(tok)
    tok_info |= {"file": "tokenizer.json", "sha256": sha256_file(out / "tokenizer.json")}
    if enc.eot is None:
        tok_info["note"] = f"no {EOT} token: documents are not separated"
    return enc, tok_info


def _write_tokens(path: Path, enc, dtype, texts, sources) -> tuple[int, int]:
    """Encode ``texts`` ((text, ends a document) pieces) in batches of about BATCH_BYTES into
    ``path`` (atomically), a separator after each document; (tokens, documents) written."""
    counts = {"tokens": 0, "docs": 0, "text": 0}

    def write(f) -> None:
        batch: list[tuple[str, bool]] = []
        size = 0

        def flush() -> None:
            ids: list[int] = []
            for (_text, end), toks in zip(batch, enc.encode_batch([t for t, _ in batch])):
                ids.extend(toks)
                counts["text"] += len(toks)
                if end:
                    ids.extend(enc.separator())
                    counts["docs"] += 1
            f.write(np.asarray(ids, dtype=dtype).tobytes())
            counts["tokens"] += len(ids)
            batch.clear()

        for text, end in texts:
            batch.append((text, end))
            size += len(text)
            if size >= BATCH_BYTES:
                flush()
                size = 0
        flush()
        if counts["text"] == 0:  # document separators alone are no corpus
            raise PrepareError(
                "the inputs hold no text"
                + (f" ({', '.join(str(s.path) for s in sources)} are empty)" if sources else "")
            )

    atomic_write(path, write, binary=True)
    return counts["tokens"], counts["docs"]
