"""Run cells in this process, stack by stack: the default runner.

Pending cells are grouped by what a stack must share (width, parametrization, steps) and
cut into stacks of K. A stack that raises marks its cells ``failed`` with the reason and
the sweep goes on; on out-of-memory a stack of K > 1 is split in halves and retried first.
Every finished stack's records are written before the next stack starts, so an interrupt
loses only the stack in flight.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from lwscale.core.errors import UserError
from lwscale.core.log import quiet
from lwscale.data.load import load_dataset
from lwscale.model.user import preflight
from lwscale.rundir.store import Store
from lwscale.runners.result import RunResult, RunSummary
from lwscale.runners.stack import make_stacks
from lwscale.runners.stacking import choose_k
from lwscale.runners.worker import work
from lwscale.sweep.plan import Cell, Plan, make_plan
from lwscale.sweep.spec import Spec
from lwscale.training.checkpoint import saved_stacks
from lwscale.training.loop import resolve_device


class Progress:
    """Callbacks a caller may pass to follow a sweep (the CLI draws Rich bars with them)."""

    def start(self, total_cells: int) -> None: ...
    def stack_started(self, stack: list[Cell]) -> None: ...
    def step(self, step: int, steps: int, losses: list[float]) -> None: ...
    def stack_finished(self, stack: list[Cell]) -> None: ...


class OpenRun(NamedTuple):
    plan: Plan
    store: Store
    todo: list[Cell]  # the plan's cells still to train


def open_run(
    spec: Spec,
    out_dir=None,
    retry_failed: bool = False,
    log: Callable[[str], None] = quiet,
    update_spec: bool = True,
    cells=None,
) -> OpenRun:
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


def run_sweep(
    spec: Spec,
    out_dir=None,
    retry_failed: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] = quiet,
    update_spec: bool = True,
    cells=None,
    summary: RunSummary | None = None,
) -> RunResult:
    """Plan the spec, open its run directory, train every pending cell stack by stack in
    this process, and rebuild results.csv (after each stack, and at the end unless the last
    stack's rebuild already holds everything). Ctrl-C stops after writing what finished.
    ``cells`` (ids) limits the work to those cells (a Slurm task's stack). Each finished stack
    is counted into ``summary`` (a new one if None) as it finishes, so a caller that a stop
    signal interrupts (``worker.Preempted``, which passes through) still has the counts."""
    progress = progress or Progress()
    plan, store, todo = open_run(spec, out_dir, retry_failed, log, update_spec, cells)
    device = resolve_device(spec.train.device)
    log(
        f"run directory {store.root}: {len(plan.cells)} cells, {len(plan.cells) - len(todo)} already finished, "
        f"{len(todo)} to train on {device}"
    )
    summary, interrupted, table = summary if summary is not None else RunSummary(), False, None
    if todo:
        ms = spec.model
        dataset = load_dataset(
            spec.data,
            ms.seq_len,
            spec.train.batch_size,
            spec.train.eval_tokens,
            device,
            max_width=max(ms.widths),
            depth=ms.depth,
            head_dim=ms.head_dim,
            log=log,
        )
        dataset.prepare(sorted({c.seed for c in todo}), max(c.steps for c in todo))
        passes = dataset.passes(max(c.steps for c in todo))
        if passes > 1:
            log(
                f"warning: the longest cells read the training text {passes:.1f} times over "
                f"({spec.train.batch_size} x {ms.seq_len + 1} tokens a step): they see repeated data, so a "
                "loss can fall by memorising; use a larger corpus, fewer steps or source: synthetic"
            )
        if spec.model.factory:
            preflight(spec, todo[0].model, log)
        stacks = make_stacks(todo, choose_k(spec, todo, device, log, run_dir=store.root), saved_stacks(store.root))
        progress.start(len(todo))
        try:  # claim -> train -> release, stack by stack; other workers may share the run
            # a submitit job (cells given) waits for others' claims in its own loop (WorkerJob)
            table = work(stacks, spec, store, plan, dataset, device, summary, progress, log, wait=cells is None)
        except KeyboardInterrupt:  # perhaps between a stack's records and its rebuild
            interrupted = True
    if table is None:
        table = store.rebuild_table(plan)
    return RunResult(store, plan, table, summary, interrupted)
