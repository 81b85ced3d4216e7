"""Atomic writes and digests: every file lwscale writes goes through here.

``atomic_write`` writes a temporary file beside the target and renames it into place, so nothing
half-written is ever seen; ``sha256_file`` is the one digest. Temporary files and folders follow
the umask:

``tempfile.mkstemp`` makes files 0600 and ``mkdtemp`` folders 0700 whatever the umask, so a
record, a table or a cache renamed from one would be private to its writer (unreadable by a
group sharing the run). These create them as ``open()`` and ``mkdir()`` do: 0666 and 0777
less the umask. Without torch, for ``lwscale data prepare``.
"""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from pathlib import Path
from typing import IO, Any, Callable

from lwscale.core import faults


def temp_file(folder: str | Path, prefix: str = "", suffix: str = ".tmp") -> tuple[int, str]:
    """A new file in ``folder``, opened for writing: (file descriptor, path), as ``mkstemp``."""
    while True:
        path = os.path.join(folder, f"{prefix}{uuid.uuid4().hex[:12]}{suffix}")
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), path
        except FileExistsError:
            continue


def temp_dir(folder: str | Path, prefix: str = "") -> str:
    """A new folder in ``folder``, as ``mkdtemp``."""
    while True:
        path = os.path.join(folder, f"{prefix}{uuid.uuid4().hex[:12]}")
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def json_default(x: Any):
    """``json.dumps(default=...)`` for numpy/torch scalars and paths."""
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x)}")


def strict_json(x: Any) -> Any:
    """NaN/inf -> None, so that records are strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: strict_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [strict_json(v) for v in x]
    return x


class _Sink:
    """The temporary file of an atomic write, as the writer sees it. It keeps the OSError of a
    failed write, which some writers swallow: ``torch.save`` reports a full disk as a
    RuntimeError ("unexpected pos ..."), and the error must still read as the disk's. It
    also hashes what a writer writes in order (one that seeks is hashed from the file)."""

    def __init__(self, f: IO, binary: bool):
        self._f, self.error = f, None
        self._hash = hashlib.sha256() if binary else None
        self._pos = 0

    def write(self, data):
        try:
            n = self._f.write(data)
        except OSError as exc:
            self.error = exc
            raise
        if self._hash is not None:
            size = memoryview(data).nbytes
            if self._f.tell() != self._pos + size:  # the writer moved: hash the file instead
                self._hash = None
            else:
                self._hash.update(data)
                self._pos += size
        return n

    def digest(self, path: str) -> str:
        if self._hash is not None:
            return self._hash.hexdigest()
        return sha256_file(Path(path))

    def __getattr__(self, name: str):
        return getattr(self._f, name)


def atomic_write(
    path: Path, write: Callable[[IO], None], binary: bool = False, before_rename: Callable[[str], None] | None = None
) -> str | None:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it into place:
    nothing half-written stays, and injected write faults (lwscale.core.faults) apply. A write
    that fails in the file system raises its OSError, whatever ``write`` turned it into.
    Returns the SHA-256 of a binary file's bytes, which ``before_rename(digest)`` is given
    once they are on disk and before the file takes ``path``'s place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(path.parent, prefix=f".{path.name}.", suffix=".tmp")  # as open() would: the umask applies
    sink = None
    digest = None
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            faults.check_write(path)
            sink = _Sink(f, binary)
            write(sink)
            f.flush()
            os.fsync(f.fileno())
        if binary:
            digest = sink.digest(tmp)
        if before_rename is not None:
            before_rename(digest)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if sink is not None and sink.error is not None and not isinstance(exc, OSError):
            raise sink.error from exc
        raise
    return digest


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename; nothing half-written stays."""
    atomic_write(path, lambda f: f.write(text))
