"""Injected faults for tests: crashes at a chosen step, never timing-based.

``LWSCALE_FAULT`` holds faults separated by ``,``; each is ``kind`` followed by ``:key=value``
filters (``width``, ``k`` = stack size and ``seed`` = the stack's first seed narrow any of them).
Kinds:

    raise:step=N[:width=W]        a RuntimeError inside the training step N of a stack
    oom:step=N[:width=W][:k=K]    a torch.OutOfMemoryError at step N (only stacks of K cells if given)
    interrupt:step=N[:width=W]    a KeyboardInterrupt at step N (Ctrl-C)
    kill:step=N[:width=W]         SIGKILL of this process at step N (kill -9)
    nan:step=N:cell=C[:width=W]   cell C's loss becomes NaN at step N
    write:errno=ENOSPC[:match=S]  writing a file whose path contains S fails with that errno
    touch:step=N:path=P           create the file P at step N (a signal to another process)
    pause:step=N:until=P          wait at step N until the file P exists (at most 120 s, then raise)

A fault with ``:once=PATH`` fires only if PATH does not exist, and creates it, so that a
rerun after the crash goes through.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path


def _parse() -> list[tuple[str, dict[str, str]]]:
    spec = os.environ.get("LWSCALE_FAULT", "").strip()
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kind, *opts = item.split(":")
        out.append((kind, dict(o.split("=", 1) for o in opts)))
    return out


def _fire(opts: dict[str, str]) -> bool:
    once = opts.get("once")
    if once is None:
        return True
    p = Path(once)
    if p.exists():
        return False
    p.touch()
    return True


def at_step(step: int, width: int, k: int, seed: int = 0) -> list[int]:
    """Called by the trainer at every step (cheap when LWSCALE_FAULT is unset). Raises or
    kills as asked; returns the cells whose loss must be made NaN at this step."""
    if "LWSCALE_FAULT" not in os.environ:
        return []
    nan_cells = []
    for kind, o in _parse():
        if int(o.get("step", -1)) != step or ("width" in o and int(o["width"]) != width):
            continue
        if ("k" in o and int(o["k"]) != k) or ("seed" in o and int(o["seed"]) != seed):
            continue
        if kind == "nan":
            nan_cells.append(int(o.get("cell", 0)))
        elif not _fire(o):
            continue
        elif kind == "raise":
            raise RuntimeError(f"injected fault at step {step}")
        elif kind == "oom":
            import torch

            raise torch.OutOfMemoryError(f"injected out-of-memory at step {step}")
        elif kind == "interrupt":
            raise KeyboardInterrupt
        elif kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind == "touch":
            Path(o["path"]).touch()
        elif kind == "pause":
            _wait_for(Path(o["until"]))
    return nan_cells


def _wait_for(path: Path, limit_s: float = 120.0) -> None:
    """Block until ``path`` exists: a barrier between test processes, not a timing guess."""
    import time

    deadline = time.monotonic() + limit_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"injected pause: {path} did not appear within {limit_s:.0f} s")
        time.sleep(0.02)


def check_write(path: Path) -> None:
    """Called before a file is written; raises OSError(errno) for an injected write fault."""
    if "LWSCALE_FAULT" not in os.environ:
        return
    for kind, o in _parse():
        if kind == "write" and o.get("match", "") in str(path) and _fire(o):
            code = getattr(errno, o.get("errno", "ENOSPC"))
            raise OSError(code, os.strerror(code), str(path))
