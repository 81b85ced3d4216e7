"""The worker loop every runner uses: claim a stack, train it, write its records, release.

Any number of workers (processes on this box, Slurm tasks on a cluster) may run it on one
run directory. A worker trains only the cells whose claim it won (lwscale.claims), and
only if their record is still what it was when the worker planned its work: a cell that
another worker finished (or, with --retry-failed, retried) in the meantime is skipped. A
record is written before its claim is released, so no cell is ever trained twice at once.
"""
from __future__ import annotations

import os
import socket
from typing import Callable

from ..checkpoint import StackCheckpoint, WriteError
from ..claims import claim
from ..plan import Cell
from .local import RunSummary, run_stack


def _stamp(store, cell_id: str) -> int | None:
    """The state of a cell's record: its modification time, or None when it has none."""
    try:
        return store.record_path(cell_id).stat().st_mtime_ns
    except FileNotFoundError:
        return None


def work(stacks: list[list[Cell]], spec, store, plan, dataset, device, summary: RunSummary, progress,
         log: Callable[[str], None] = lambda s: None):
    """Train the stacks this worker wins. Returns results.csv's table when the last stack's
    rebuild wrote it (nothing of this worker's changed since), else None: the caller rebuilds."""
    r = spec.runner
    timeout_s = r.claim_timeout_minutes * 60
    every_s = None if r.checkpoint_minutes is None else r.checkpoint_minutes * 60
    planned = {c.id: _stamp(store, c.id) for stack in stacks for c in stack}
    trained = skipped = 0
    table = None

    def checkpoint_for(stack: list[Cell]) -> StackCheckpoint:
        return StackCheckpoint(store.root, [c.id for c in stack], every_s, r.keep_checkpoints, log)

    for stack in stacks:
        won = None
        try:
            won = claim(store.root, [c.id for c in stack], timeout_s)
            mine = [] if won is None else [c for c in stack
                                           if c.id in won.cells and _stamp(store, c.id) == planned[c.id]]
            skipped += len(stack) - len(mine)
            table = None  # until this stack's records are in it; other workers' may land meanwhile
            if mine:
                run_stack(mine, spec, store, dataset, device, summary, progress.step, progress.stack_started,
                          checkpoint_for)
                trained += len(mine)
                table = store.rebuild_table(plan)
        except OSError as exc:  # writing a claim, a record or the table: disk full, no permission
            raise WriteError(f"cannot write {exc.filename or store.root}: {exc.strerror or exc}; "
                             "finished cells are kept, rerun to resume once this is fixed") from None
        finally:
            if won is not None:
                won.release()
        progress.stack_finished(stack)
    log(f"worker {socket.gethostname()}:{os.getpid()} trained {trained} cells ({summary.done} done, "
        f"{summary.diverged} diverged, {summary.failed} failed); {skipped} were taken by other workers")
    return table
