"""Claims: which worker is training which cells, as files in ``<run>/claims/``.

A worker claims a stack by writing one claim file (host, pid, start time, the stack's
cells) and hard-linking it to ``claims/<cell_id>.claim`` for each cell. ``os.link`` fails
when the name exists, atomically, also on NFS, so every cell is won by exactly one worker;
a worker trains only the cells it won. All the links share one inode, whose modification
time is the heartbeat: touching it (a background thread does, every timeout / 4 and at least
every minute) refreshes
the claim of every cell at once.

A claim is *stale* when its heartbeat is older than the timeout, or when its pid is dead on
this host. A claim file that cannot be read as one (not UTF-8, not JSON: lwscale writes a
claim whole before linking it, so it never sees a half-written one) is *broken*, and stale
at once: nobody can be shown to hold it, and waiting for its timeout would leave its cell
untrained. A stale claim is taken over under a per-cell takeover lock (``mkdir``, atomic):
re-read under the lock, unlinked, and replaced by a link to the new claim. A claim is
released (its links removed) once the stack's records are written.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lwscale.core import faults
from lwscale.core.log import quiet

SUFFIX = ".claim"


@dataclass(frozen=True)
class ClaimInfo:
    cell_id: str
    host: str
    pid: int
    started: float  # unix time the claim was made
    heartbeat: float  # unix time of the last heartbeat (the file's mtime)
    cells: tuple[str, ...]
    broken: bool = False  # the file is not a claim lwscale wrote: stale at once

    @property
    def worker(self) -> str:
        return f"{self.host}:{self.pid}"

    def stale(self, timeout_s: float, now: float | None = None) -> bool:
        if self.broken:
            return True
        now = time.time() if now is None else now
        if now - self.heartbeat > timeout_s:
            return True
        return self.host == socket.gethostname() and not pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claims_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "claims"


def read_claim(path: Path) -> ClaimInfo | None:
    """The claim at ``path``, or None if there is none (or it vanished while read); a file
    that is not a readable claim gives a ``broken`` one."""
    try:
        st = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    cid = path.name.removesuffix(SUFFIX)
    try:
        data = json.loads(raw.decode("utf-8"))
        return ClaimInfo(
            cid,
            str(data["host"]),
            int(data["pid"]),
            float(data["started"]),
            st.st_mtime,
            tuple(str(c) for c in data.get("cells", ())),
        )
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError):  # UnicodeDecodeError is a ValueError
        return ClaimInfo(cid, "?", -1, st.st_mtime, st.st_mtime, (), broken=True)


def read_claims(run_dir: Path) -> dict[str, ClaimInfo]:
    """Every cell claim of the run, stale or not, by cell id."""
    d = claims_dir(run_dir)
    out = {}
    if d.is_dir():
        for p in sorted(d.glob(f"*{SUFFIX}")):
            info = read_claim(p)
            if info is not None:
                out[info.cell_id] = info
    return out


class Claim:
    """The cells one worker won, with a heartbeat thread while they train."""

    def __init__(self, run_dir: Path, fd: int, cells: list[str], timeout_s: float):
        self.dir = claims_dir(run_dir)
        self.fd, self.cells, self.timeout_s = fd, cells, timeout_s
        self.inode = os.fstat(fd).st_ino
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_loop, daemon=True)
        self._thread.start()

    def owns(self, cell_id: str) -> bool:
        try:
            return (self.dir / f"{cell_id}{SUFFIX}").stat().st_ino == self.inode
        except FileNotFoundError:
            return False

    def beat(self) -> None:
        """Refresh the heartbeat of every cell of this claim."""
        if self.fd >= 0:
            os.utime(self.fd)

    def _beat_loop(self) -> None:
        while not self._stop.wait(min(self.timeout_s / 4, 60.0)):  # a bounded wait, however long the timeout
            try:
                self.beat()
            except OSError:
                pass

    def release(self) -> None:
        """Remove this worker's claim links (never another worker's) and stop the heartbeat."""
        self._stop.set()
        for cid in self.cells:
            if self.owns(cid):
                (self.dir / f"{cid}{SUFFIX}").unlink(missing_ok=True)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim(run_dir: Path, cell_ids: list[str], timeout_s: float, log: Callable[[str], None] = quiet) -> Claim | None:
    """Claim as many of ``cell_ids`` as are free or stale; None if none of them is. Taking
    over a broken (unreadable) claim is said through ``log``."""
    d = claims_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    host, pid = socket.gethostname(), os.getpid()
    tmp = d / f".new-{host}-{pid}-{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        faults.check_write(tmp)
        os.write(fd, json.dumps({"host": host, "pid": pid, "started": time.time(), "cells": cell_ids}).encode())
        os.fsync(fd)
        won = [cid for cid in cell_ids if _link(tmp, d / f"{cid}{SUFFIX}", timeout_s, log)]
    except BaseException:
        os.close(fd)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    if not won:
        os.close(fd)
        return None
    return Claim(run_dir, fd, won, timeout_s)


def _link(src: Path, dst: Path, timeout_s: float, log: Callable[[str], None] = quiet) -> bool:
    try:
        os.link(src, dst)
        return True
    except FileExistsError:
        pass
    info = read_claim(dst)
    if info is not None and not info.stale(timeout_s):
        return False
    taken = _take_over(src, dst, timeout_s)
    if taken and info is not None and info.broken:
        log(f"warning: unreadable claim {dst} (not a claim lwscale wrote); taking it over")
    return taken


def _take_over(src: Path, dst: Path, timeout_s: float) -> bool:
    """Replace a stale claim at ``dst`` by ``src``, under a lock so only one worker does."""
    lock = dst.with_name(dst.name + ".takeover")
    try:
        lock.mkdir()
    except FileExistsError:
        try:  # a takeover lock left by a worker that died inside it
            if time.time() - lock.stat().st_mtime > timeout_s:
                lock.rmdir()
        except FileNotFoundError:
            pass
        return False
    try:
        info = read_claim(dst)  # re-read under the lock: it may have been taken over meanwhile
        if info is not None and not info.stale(timeout_s):
            return False
        dst.unlink(missing_ok=True)
        os.link(src, dst)
        return True
    except FileExistsError:
        return False
    finally:
        lock.rmdir()
