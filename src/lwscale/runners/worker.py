"""The worker loop every runner uses: claim a stack, train it, write its records, release.

Any number of workers (processes on this box, Slurm tasks on a cluster) may run it on one
run directory. A worker trains only the cells whose claim it won (lwscale.rundir.claims), and
only if, read again once the claim is held, their record is still what it was when the
worker listed the cells to train (``Store.pending``, before the seconds spent choosing K
and preparing data): a cell that another worker finished (or, with --retry-failed,
retried) in the meantime is skipped. A record is written before its claim is released, so
no cell is ever trained twice.

A worker that Slurm asks to stop (SIGUSR2 before its time limit or at preemption, SIGTERM
from scancel, ``scontrol requeue`` or the time limit itself) stops at the next step
boundary: the stack in flight saves its checkpoint, its claim is released and ``Preempted``
is raised, so the task that picks the stack up next resumes from that step without waiting
for the claim to go stale (see ``stop_on_signals``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from typing import Callable

from lwscale.core.log import quiet
from lwscale.rundir.claims import claim, read_claims
from lwscale.runners.result import RunSummary
from lwscale.runners.stack import run_stack
from lwscale.sweep.plan import Cell
from lwscale.training.checkpoint import StackCheckpoint, WriteError, prune


class Preempted(BaseException):
    """This worker was asked to stop by ``signum``; the stack in flight saved its checkpoint.
    A BaseException, so that run_stack does not record it as the stack's failure."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class _Stop:
    signum: int | None = None  # the stop signal received, if any (set from a signal handler)


@contextlib.contextmanager
def stop_on_signals(signums=(signal.SIGUSR2, signal.SIGTERM), enabled: bool = True):
    """While inside, the signals ``signums`` ask this worker to stop at the next step
    boundary (it raises ``Preempted`` there) instead of dying mid-step; yields the handlers
    they replace, restored on exit. The handler only sets a flag: saving from inside it
    could catch the model half-way through an optimizer step."""
    if not enabled:
        yield {}
        return
    _Stop.signum = None
    previous = {s: signal.getsignal(s) for s in signums}

    def handler(signum, frame):
        if _Stop.signum is None:
            _Stop.signum = signum
            # os.write, not print: a print here may land inside another print (reentrant call)
            os.write(1, f"caught {signal.Signals(signum).name}: stopping at the next step boundary\n".encode())

    for s in signums:
        signal.signal(s, handler)
    try:
        yield previous
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _Stop.signum = None


def check_stop() -> None:
    if _Stop.signum is not None:
        raise Preempted(_Stop.signum)


class _StoppableCheckpoint(StackCheckpoint):
    """A stack's checkpoint that also saves, and stops the stack, once a stop is requested."""

    def after_step(self, done, steps, model, opt, loop) -> None:
        if _Stop.signum is not None and done < steps:
            self.save(model, opt, loop())
            self.log(f"saved the stack's checkpoint at step {done} before stopping")
            raise Preempted(_Stop.signum)
        super().after_step(done, steps, model, opt, loop)


POLL_S = 5.0  # seconds between looks at the cells other workers hold, while waiting for them


def _unchanged(store, cell: Cell, planned: dict) -> bool:
    """Whether a cell whose claim this worker holds still needs training: its record, read
    again now, is as it was when the cell was listed (and not finished meanwhile)."""
    if store.record_stamp(cell.id) != planned[cell.id]:
        return False
    rec = store.read_record(cell.id)
    return rec is None or not rec.finished


def work(
    stacks: list[list[Cell]],
    spec,
    store,
    plan,
    dataset,
    device,
    summary: RunSummary,
    progress,
    log: Callable[[str], None] = quiet,
    wait: bool = True,
):
    """Train the stacks this worker wins. Returns results.csv's table when the last stack's
    rebuild wrote it (nothing of this worker's changed since), else None: the caller rebuilds.

    With ``wait``, cells that other live workers hold are waited for (polled every POLL_S
    seconds) until their records are written, or trained here once their claims go stale,
    so that the worker returns only when every one of its cells is finished."""
    r = spec.runner
    timeout_s = r.claim_timeout_minutes * 60
    every_s = None if r.checkpoint_minutes is None else r.checkpoint_minutes * 60
    # each record's state when the cells were listed; a cell listed elsewhere: its state now
    planned = {
        c.id: store.listed[c.id] if c.id in store.listed else store.record_stamp(c.id)
        for stack in stacks
        for c in stack
    }
    trained = 0
    table = None

    def checkpoint_for(stack: list[Cell]) -> StackCheckpoint:
        return _StoppableCheckpoint(store.root, [c.id for c in stack], every_s, r.keep_checkpoints, log)

    def attempt(stack: list[Cell]) -> list[Cell]:
        """Claim and train what is free of ``stack``; return its cells that others hold."""
        nonlocal trained, table
        check_stop()  # a stop asked for between stacks: claim nothing more
        won = None
        try:
            won = claim(store.root, [c.id for c in stack], timeout_s, log)
            held = [c for c in stack if won is None or c.id not in won.cells]
            mine = [c for c in stack if won is not None and c.id in won.cells and _unchanged(store, c, planned)]
            table = None  # until this stack's records are in it; other workers' may land meanwhile
            if mine:
                run_stack(
                    mine, spec, store, dataset, device, summary, progress.step, progress.stack_started, checkpoint_for
                )
                trained += len(mine)
                table = store.rebuild_table(plan)
        except OSError as exc:  # writing a claim, a record or the table: disk full, no permission
            raise WriteError(
                f"cannot write {exc.filename or store.root}: {exc.strerror or exc}; "
                "finished cells are kept, rerun to resume once this is fixed"
            ) from None
        finally:
            if won is not None:
                won.release()
        return [c for c in held if _unchanged(store, c, planned)]  # not finished by their worker yet

    waiting = []
    for stack in stacks:
        rest = attempt(stack)
        if rest:
            waiting.append(rest)
        progress.stack_finished(stack)
    if wait and waiting:
        n = sum(map(len, waiting))
        log(
            f"waiting for {n} cell{'s' if n > 1 else ''} that other workers are training: this worker returns "
            f"once they are finished, and trains any whose worker stops (its claim goes stale after "
            f"{r.claim_timeout_minutes:g} min); Ctrl-C stops waiting, they stay theirs"
        )
        while waiting:
            deadline = time.monotonic() + POLL_S
            while time.monotonic() < deadline:
                check_stop()
                time.sleep(min(0.5, POLL_S))
            waiting = [rest for rest in map(attempt, waiting) if rest]
        table = None  # the others' records landed after this worker's last rebuild
    if not r.keep_checkpoints:  # a stack cut otherwise than its checkpoint's, whose cells are all finished
        prune(store.root, lambda cid: (rec := store.read_record(cid)) is not None and rec.finished)
    skipped = len(planned) - trained
    log(
        f"worker {socket.gethostname()}:{os.getpid()} trained {trained} cells ({summary.done} done, "
        f"{summary.diverged} diverged, {summary.failed} failed); {skipped} were taken by other workers"
    )
    return table


def wait_for_claimed(
    store, cell_ids: list[str], timeout_s: float, log: Callable[[str], None] = quiet, poll_s: float | None = None
) -> None:
    """Wait while every cell of ``cell_ids`` is held by a live claim of another worker:
    return as soon as one has no claim (its holder finished or released it) or a stale one
    (its holder died: the next ``claim`` takes it over). A stop signal ends the wait with
    ``Preempted``."""
    poll_s = poll_s if poll_s is not None else min(30.0, max(0.5, timeout_s / 8))
    log(f"waiting for {len(cell_ids)} cells claimed by other workers: trained here if their claims go stale")
    while True:
        claims, now = read_claims(store.root), time.time()
        if any(cid not in claims or claims[cid].stale(timeout_s, now) for cid in cell_ids):
            return
        deadline = time.monotonic() + poll_s
        while time.monotonic() < deadline:
            check_stop()
            time.sleep(min(0.5, poll_s))
