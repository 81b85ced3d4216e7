"""What every runner returns: ``RunResult``.

``run_sweep`` (this process), ``run_gpus`` (a worker per GPU), a worker job (``WorkerJob``,
local or Slurm), ``submit_slurm`` (which only submits: no table yet, the array's job ids) and
``train_points`` (``transfer --train``'s cells) all return one, so a caller reads the run
directory, the table and what happened in the same way whichever runner it chose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from lwscale.rundir.store import Store
from lwscale.sweep.plan import Plan


@dataclass
class RunSummary:
    """The cells this call trained, by outcome, and each failure's reason and traceback."""

    done: int = 0
    diverged: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: RunSummary) -> None:
        self.done += other.done
        self.diverged += other.diverged
        self.failed += other.failed
        self.failures += other.failures


@dataclass
class RunResult:
    store: Store  # the run directory
    plan: Plan  # the spec's cells (for train_points: the last rule's derived plan)
    # results.csv as this call left it; None from submit_slurm (nothing trained yet) and from a worker
    # job (its table is on disk: the runner that started the workers rebuilds it once)
    table: pd.DataFrame | None = None
    summary: RunSummary = field(default_factory=RunSummary)
    interrupted: bool = False  # Ctrl-C, or a stop signal: finished cells are kept, a rerun resumes
    job_ids: list[str] = field(default_factory=list)  # submit_slurm: the array's task ids
