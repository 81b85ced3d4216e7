"""Temporary files and folders that follow the umask, for writes renamed into place.

``tempfile.mkstemp`` makes files 0600 and ``mkdtemp`` folders 0700 whatever the umask, so a
record, a table or a cache renamed from one would be private to its writer (unreadable by a
group sharing the run). These create them as ``open()`` and ``mkdir()`` do: 0666 and 0777
less the umask. Without torch, for ``lwscale data prepare``.
"""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path


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
