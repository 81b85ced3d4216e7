"""``lwscale status``: where a run stands, read from its records and claims only.

Per width, the physical cells that are done, diverged, failed, running (a live claim:
which worker, since when, last heartbeat) and pending; the first failure reasons; and an
estimate of the time left. The estimate prices each unfinished cell at the run's measured
seconds per model FLOP (the median over finished records of wall_s / stack_size over
tokens x flops_per_token, so widths not measured yet are priced too) and divides by the
number of live workers (at least one).

Status only reads: for a ``model.factory`` spec, whose plan would import the user's model
code, the cells come from the run's plan.json (written by ``lwscale sweep``), never from
planning the spec.
"""
from __future__ import annotations

import math

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from .claims import ClaimInfo, read_claims
from .model import flops_per_token
from .plan import make_plan
from .store import Store


@dataclass(frozen=True)
class IndexedCell:
    """A cell as plan.json lists it: what status needs, without planning the spec."""

    id: str
    width: int
    steps: int
    flops_per_token: float


@dataclass
class IndexedPlan:
    cells: list

KINDS = ("done", "diverged", "failed", "running", "pending")


@dataclass
class RunStatus:
    root: Path
    counts: dict[int, dict[str, int]]                     # width -> status -> cells
    running: list[tuple[str, int, ClaimInfo]]             # (cell id, width, claim)
    stale: list[tuple[str, int, ClaimInfo]]               # claims whose worker is gone
    failures: list[tuple[str, str]]                       # (cell id, reason)
    seconds_left: float | None                            # None: nothing measured yet
    workers: int
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> dict[str, int]:
        return {k: sum(c[k] for c in self.counts.values()) for k in KINDS}


class StatusReader:
    """A run's spec and plan, read once and again only when spec.yaml changes (a new sweep
    into the run, a wider grid); ``read()`` rereads its records and claims, so ``lwscale
    status --watch`` plans the sweep once however often it refreshes."""

    def __init__(self, run_dir: Path):
        self.root = Path(run_dir)
        self._stamp: int | None = None
        self._replan(force=True)

    def _replan(self, force: bool = False) -> None:
        stamp = (self.root / "spec.yaml").stat().st_mtime_ns if (self.root / "spec.yaml").exists() else None
        if force or stamp != self._stamp:
            store = Store(self.root)
            self.spec = store.read_spec()
            self.note = None
            if self.spec.model.factory:  # planning would import the user's model: read the run's index
                index = store.read_plan_index()
                if index is None:
                    self.note = ("this run's plan.json is missing or older than its spec.yaml, and planning a "
                                 "model.factory spec would run its code: only cells with records are shown "
                                 "(a sweep of the spec writes plan.json)")
                    index = []
                self.plan = IndexedPlan([IndexedCell(**c) for c in index])
            else:
                self.plan = make_plan(self.spec)
            self._stamp = stamp

    def read(self) -> RunStatus:
        self._replan()
        spec, plan = self.spec, self.plan
        store = Store(self.root)  # fresh each time: its warnings are this reading's
        records = store.records()
        timeout_s = spec.runner.claim_timeout_minutes * 60
        claims, now = read_claims(store.root), time.time()
        cells = list(plan.cells)
        if isinstance(plan, IndexedPlan) and not cells:  # no index: the cells that have records
            cells = [IndexedCell(cid, int(r.get("width") or 0), int(r.get("steps") or 0),
                                 float(r.get("flops_per_token") or 0)) for cid, r in records.items()]
        counts = {w: dict.fromkeys(KINDS, 0) for w in sorted({c.width for c in cells})}
        running, stale, failures, left = [], [], [], []
        for cell in cells:
            rec, cl = records.get(cell.id), claims.get(cell.id)
            live = cl is not None and not cl.stale(timeout_s, now)
            if rec is not None and rec["status"] in ("done", "diverged"):
                kind = rec["status"]
            elif live:
                kind = "running"
                running.append((cell.id, cell.width, cl))
            elif rec is not None:
                kind = "failed"
                failures.append((cell.id, rec.get("reason") or "?"))
            else:
                kind = "pending"
            if cl is not None and not live and kind != "done":
                stale.append((cell.id, cell.width, cl))
            if kind in ("running", "pending"):
                left.append(cell)
            counts[cell.width][kind] += 1
        workers = len({cl.worker for _, _, cl in running})
        warnings = list(store.warnings) + ([self.note] if self.note else [])
        return RunStatus(store.root, counts, running, stale, failures, _seconds_left(records, left, spec),
                         max(workers, 1), warnings)


def run_status(run_dir: Path) -> RunStatus:
    """Where the run in ``run_dir`` stands now."""
    return StatusReader(run_dir).read()


def seconds_per_flop(records: dict[str, dict]) -> float | None:
    """The run's measured training seconds per model FLOP, per cell (median over records)."""
    rates = [r["wall_s"] / r["stack_size"] / (r["tokens"] * r["flops_per_token"])
             for r in records.values()
             if r.get("status") in ("done", "diverged") and r.get("wall_s") and r.get("stack_size")
             and r.get("tokens") and r.get("flops_per_token")]
    return statistics.median(rates) if rates else None


def _seconds_left(records: dict, cells: list, spec) -> float | None:
    rate = seconds_per_flop(records)
    if rate is None:
        return None if cells else 0.0
    tokens_per_step = spec.train.batch_size * spec.model.seq_len
    return sum(c.steps * tokens_per_step * _flops_per_token(c) * rate for c in cells)


def _flops_per_token(cell) -> float:
    return cell.flops_per_token if isinstance(cell, IndexedCell) else flops_per_token(cell.model)


def fmt_duration(seconds: float) -> str:
    """A duration for people, in the unit that keeps the number under 90: "42 s", "7.5 min",
    "3.2 h". A negative one (clocks of two machines that disagree) reads as "0 s", an
    infinite or NaN one (nothing measured yet) as "unknown"."""
    if not math.isfinite(seconds):
        return "unknown"
    s = max(0.0, seconds)
    if round(s) < 90:
        return f"{s:.0f} s"
    if round(s / 60, 1) < 90:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def render(st: RunStatus):
    """A Rich renderable of the status."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    now = time.time()
    table = Table(title=f"{st.root}", title_justify="left")
    table.add_column("width", justify="right")
    for k in KINDS:
        table.add_column(k, justify="right")
    for w, c in st.counts.items():
        table.add_row(str(w), *(str(c[k]) for k in KINDS))
    total = st.total
    table.add_row("all", *(str(total[k]) for k in KINDS), style="bold")
    lines = []
    for cid, w, cl in st.running:
        lines.append(f"running: cell {cid} (width {w}) on {cl.worker}, started {fmt_duration(now - cl.started)} "
                     f"ago, heartbeat {fmt_duration(now - cl.heartbeat)} ago")
    for cid, w, cl in st.stale:
        if cl.broken:
            lines.append(f"unreadable claim: cell {cid} (width {w}): not a claim lwscale wrote; the next worker "
                         "takes it over")
            continue
        lines.append(f"stale claim: cell {cid} (width {w}) by {cl.worker}, heartbeat "
                     f"{fmt_duration(now - cl.heartbeat)} ago; the next worker takes it over")
    for cid, reason in st.failures[:5]:
        lines.append(f"failed: cell {cid}: {reason}")
    if st.failures:
        lines.append("rerun `lwscale sweep SPEC --retry-failed` to train the failed cells again")
    for w in st.warnings:
        lines.append(f"warning: {w}")
    left = total["running"] + total["pending"]
    if left == 0:
        lines.append("time left: none, every cell is finished")
    elif st.seconds_left is None:
        lines.append(f"time left: unknown until a cell finishes ({left} cells to go)")
    else:
        lines.append(f"time left: about {fmt_duration(st.seconds_left / st.workers)} for {left} cells with "
                     f"{st.workers} worker{'s' if st.workers > 1 else ''} (from the measured throughput)")
    return Group(table, *(Text(x) for x in lines))
