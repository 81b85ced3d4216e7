"""Run cells in this process, stack by stack: the default runner.

Pending cells are grouped by what a stack must share (width, parametrization, steps) and
cut into stacks of K. A stack that raises marks its cells ``failed`` with the reason and
the sweep goes on; on out-of-memory a stack of K > 1 is split in halves and retried first.
Every finished stack's records are written before the next stack starts, so an interrupt
loses only the stack in flight.
"""
from __future__ import annotations

import errno
import traceback
from dataclasses import dataclass, field
from itertools import groupby
from typing import Callable, NamedTuple

import torch

from ..checkpoint import WriteError
from ..data import Dataset
from ..errors import UserError
from ..plan import Cell, Plan, make_plan
from ..spec import Spec
from ..store import Store
from ..train import train_stack


@dataclass
class RunSummary:
    done: int = 0
    diverged: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def make_stacks(cells: list[Cell], k: int | dict[int, int], reserved: list[list[str]] = ()) -> list[list[Cell]]:
    """Cut cells into stacks of at most k (an int, or per width) that can share one model.
    Each of ``reserved`` (cell ids in stacking order: the stacks that have a checkpoint,
    lwscale.checkpoint.saved_stacks) whose cells are all here, can share a model and fit in
    k is kept whole, first, so that it resumes; the other cells are cut as usual."""
    def size_for(width: int) -> int:
        return k if isinstance(k, int) else k.get(width, 1)

    by_id = {c.id: c for c in cells}
    stacks, taken = [], set()
    for ids in reserved:
        if not ids or len(set(ids)) != len(ids) or any(i not in by_id or i in taken for i in ids):
            continue
        stack = [by_id[i] for i in ids]
        if len({c.stack_key() for c in stack}) == 1 and len(stack) <= size_for(stack[0].width):
            stacks.append(stack)
            taken.update(ids)
    rest = [c for c in cells if c.id not in taken]
    order = sorted(rest, key=lambda c: (c.width, repr(c.stack_key()), c.seed, c.rule_hparams[1:], c.id))
    for _, group in groupby(order, key=lambda c: c.stack_key()):
        group = list(group)
        size = size_for(group[0].width)
        # balanced sizes (differing by at most one): fewer distinct shapes to compile
        n = -(-len(group) // size)
        cuts = [round(i * len(group) / n) for i in range(n + 1)]
        stacks.extend(group[a:b] for a, b in zip(cuts, cuts[1:]))
    return stacks


def failed_record(cell: Cell, reason: str) -> dict:
    return {
        "id": cell.id, "status": "failed", "reason": reason, "width": cell.width, "seed": cell.seed,
        "steps": cell.steps, "warmup": cell.warmup, "model": cell.model.to_dict(),
        "groups": [g.__dict__ for g in cell.groups], "labels": [lab.__dict__ for lab in cell.labels],
    }


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _disk_error(exc: BaseException) -> OSError | None:
    """The OSError of a full (or read-only) disk behind ``exc``, following its causes."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def run_stack(stack: list[Cell], spec: Spec, store: Store, dataset: Dataset, device: torch.device,
              summary: RunSummary, on_progress=None, on_start: Callable | None = None,
              checkpoint_for: Callable | None = None) -> None:
    """Train one stack and write its records; failures become records too.
    ``checkpoint_for(stack)`` gives the stack's checkpoint (see lwscale.checkpoint)."""
    if on_start:
        on_start(stack)
    ckpt = checkpoint_for(stack) if checkpoint_for else None
    try:
        records = train_stack(stack, spec, dataset, device, on_progress, checkpoint=ckpt)
    except torch.OutOfMemoryError as exc:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if len(stack) > 1:
            half = len(stack) // 2
            for part in (stack[:half], stack[half:]):
                run_stack(part, spec, store, dataset, device, summary, on_progress, on_start, checkpoint_for)
            if ckpt:
                ckpt.finish()
            return
        records = [failed_record(c, f"out of memory: {str(exc).splitlines()[0] if str(exc) else 'OOM'}") for c in stack]
    except (KeyboardInterrupt, UserError):  # Ctrl-C, or a file of the run cannot be written
        raise
    except Exception as exc:  # a failing stack is data; the sweep goes on
        full = _disk_error(exc)
        if full is not None:  # a full disk is not the cells' result: stop, and let a rerun resume
            raise WriteError(f"cannot write {full.filename or 'a file'}: {full.strerror or full}; finished cells "
                             "are kept, rerun to resume once there is space") from None
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        summary.failures.append(reason + "\n" + traceback.format_exc(limit=3))
        records = [failed_record(c, reason) for c in stack]
    for rec in records:
        store.write_record(rec)
        setattr(summary, rec["status"], getattr(summary, rec["status"]) + 1)
    if ckpt:
        ckpt.finish()


@dataclass
class SweepResult:
    store: Store
    plan: "object"
    table: "object"            # pandas DataFrame of results.csv
    summary: RunSummary
    interrupted: bool = False


class Progress:
    """Callbacks a caller may pass to follow a sweep (the CLI draws Rich bars with them)."""

    def start(self, total_cells: int) -> None: ...
    def stack_started(self, stack: list[Cell]) -> None: ...
    def step(self, step: int, steps: int, losses: list[float]) -> None: ...
    def stack_finished(self, stack: list[Cell]) -> None: ...


class OpenRun(NamedTuple):
    plan: Plan
    store: Store
    todo: list[Cell]              # the plan's cells still to train


def open_run(spec: Spec, out_dir=None, retry_failed: bool = False, log: Callable[[str], None] = lambda s: None,
             update_spec: bool = True, cells=None) -> OpenRun:
    """What every runner does first: plan the spec, open (or create) its run directory and
    list the cells still to train, only those in ``cells`` (ids) when given. The store's
    warnings (corrupt records, cells of another version) go to ``log``."""
    plan = make_plan(spec)
    store = Store.open(spec, out_dir, update_spec=update_spec)
    if update_spec:  # the run's own spec: its cells, for `lwscale status` (which never plans a factory spec)
        try:
            store.write_plan_index(plan)
        except OSError as exc:
            raise UserError(f"cannot write to the run directory {store.root}: {exc.strerror or exc}") from None
    todo = store.pending(plan, retry_failed=retry_failed)
    if cells is not None:
        keep = set(cells)
        todo = [c for c in todo if c.id in keep]
    for w in store.warnings:
        log(f"warning: {w}")
    return OpenRun(plan, store, todo)


def run_sweep(spec: Spec, out_dir=None, retry_failed: bool = False, progress: Progress | None = None,
              log: Callable[[str], None] = lambda s: None, update_spec: bool = True,
              cells=None) -> SweepResult:
    """Plan the spec, open its run directory, train every pending cell stack by stack in
    this process, and rebuild results.csv (after each stack, and at the end unless the last
    stack's rebuild already holds everything). Ctrl-C stops after writing what finished.
    ``cells`` (ids) limits the work to those cells (a Slurm task's stack)."""
    from ..data import load_dataset
    from ..train import resolve_device
    from .stacking import choose_k

    progress = progress or Progress()
    plan, store, todo = open_run(spec, out_dir, retry_failed, log, update_spec, cells)
    device = resolve_device(spec.train.device)
    log(f"run directory {store.root}: {len(plan.cells)} cells, {len(plan.cells) - len(todo)} already finished, "
        f"{len(todo)} to train on {device}")
    summary, interrupted, table = RunSummary(), False, None
    if todo:
        m = spec.model
        dataset = load_dataset(spec.data, m.seq_len, spec.train.batch_size, spec.train.eval_tokens, device,
                               max_width=max(m.widths), depth=m.depth, head_dim=m.head_dim, log=log)
        dataset.prepare(sorted({c.seed for c in todo}), max(c.steps for c in todo))
        passes = dataset.passes(max(c.steps for c in todo))
        if passes > 1:
            log(f"warning: the longest cells read the training text {passes:.1f} times over "
                f"({spec.train.batch_size} x {m.seq_len + 1} tokens a step): they see repeated data, so a "
                "loss can fall by memorising; use a larger corpus, fewer steps or source: synthetic")
        if spec.model.factory:
            from ..factory import preflight

            preflight(spec, todo[0].model, log)
        from ..checkpoint import saved_stacks

        stacks = make_stacks(todo, choose_k(spec, todo, device, log, run_dir=store.root), saved_stacks(store.root))
        progress.start(len(todo))
        from .worker import work

        try:  # claim -> train -> release, stack by stack; other workers may share the run
            # a submitit job (cells given) waits for others' claims in its own loop (WorkerJob)
            table = work(stacks, spec, store, plan, dataset, device, summary, progress, log, wait=cells is None)
        except KeyboardInterrupt:  # perhaps between a stack's records and its rebuild
            interrupted = True
    if table is None:
        table = store.rebuild_table(plan)
    return SweepResult(store, plan, table, summary, interrupted)
