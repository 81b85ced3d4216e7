"""``lwscale status``: where a run stands, read from its records and claims only.

Per width, the physical cells that are done, diverged, failed, running and pending; the
running stacks (one claim: its cells, which worker, since when, last heartbeat); the first
failure reasons; and an estimate of the time left. The estimate prices each unfinished cell
per width, at that width's measured seconds per step per cell (the median over its finished
records of wall_s / stack_size / steps) times its steps; a width with no finished cell yet is
scaled by FLOPs per step from the nearest measured width, and says so. A running stack
counts its cells' cost less its time so far. The sum is divided by the number of live
workers (at least one). ``to_json`` gives all of it as plain data (``lwscale status --json``).

Status only reads: for a ``model.factory`` spec, whose plan would import the user's model
code, the cells come from the run's plan.json (written by ``lwscale sweep``), never from
planning the spec.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from lwscale.model.config import flops_per_token
from lwscale.rundir.claims import ClaimInfo, read_claims
from lwscale.rundir.record import CellRecord
from lwscale.rundir.store import Store


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
class Stack:
    """The running cells of one claim: a stack a worker is training."""

    worker: str
    started: float
    heartbeat: float
    width: int
    cells: list[str]


@dataclass
class WidthLeft:
    """What is left at one width: cells (running and pending), their seconds, and the basis."""

    cells: int
    seconds: float | None  # None: no width measured yet
    basis: str


@dataclass
class RunStatus:
    root: Path
    counts: dict[int, dict[str, int]]  # width -> status -> cells
    running: list[tuple[str, int, ClaimInfo]]  # (cell id, width, claim)
    stale: list[tuple[str, int, ClaimInfo]]  # claims whose worker is gone
    failures: list[tuple[str, str]]  # (cell id, reason)
    seconds_left: float | None  # one worker's; None: nothing measured yet
    workers: int
    warnings: list[str] = field(default_factory=list)
    left_by_width: dict[int, WidthLeft] = field(default_factory=dict)

    @property
    def total(self) -> dict[str, int]:
        return {k: sum(c[k] for c in self.counts.values()) for k in KINDS}

    @property
    def stacks(self) -> list[Stack]:
        """The running cells grouped by claim (one claim file per stack), oldest first."""
        out: dict[tuple, Stack] = {}
        for cid, width, cl in self.running:
            key = (cl.host, cl.pid, cl.started)
            if key not in out:
                out[key] = Stack(cl.worker, cl.started, cl.heartbeat, width, [])
            out[key].cells.append(cid)
            out[key].heartbeat = max(out[key].heartbeat, cl.heartbeat)
        return sorted(out.values(), key=lambda s: (s.started, s.worker))


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
            # the run's index of its cells, when it was planned from this spec.yaml: planning builds
            # models (torch, seconds) and, for a model.factory spec, would run the user's code
            index = store.read_plan_index()
            if index is None and self.spec.model.factory:
                self.note = (
                    "this run's plan.json is missing or older than its spec.yaml, and planning a "
                    "model.factory spec would run its code: only cells with records are shown "
                    "(a sweep of the spec writes plan.json)"
                )
                index = []
            if index is not None:
                self.plan = IndexedPlan([IndexedCell(**c) for c in index])
            else:  # an index older than the spec (or none): plan it
                from lwscale.sweep.plan import make_plan

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
            cells = [
                IndexedCell(
                    cid, int(r.width or 0), int(r.steps or 0), float((r.result.flops_per_token if r.result else 0) or 0)
                )
                for cid, r in records.items()
            ]
        counts = {w: dict.fromkeys(KINDS, 0) for w in sorted({c.width for c in cells})}
        running, stale, failures, left = [], [], [], []
        for cell in cells:
            rec, cl = records.get(cell.id), claims.get(cell.id)
            live = cl is not None and not cl.stale(timeout_s, now)
            if rec is not None and rec.finished:
                kind = rec.status
            elif live:
                kind = "running"
                running.append((cell.id, cell.width, cl))
            elif rec is not None:
                kind = "failed"
                failures.append((cell.id, rec.reason or "?"))
            else:
                kind = "pending"
            if cl is not None and not live and kind != "done":
                stale.append((cell.id, cell.width, cl))
            if kind in ("running", "pending"):
                left.append(cell)
            counts[cell.width][kind] += 1
        workers = len({cl.worker for _, _, cl in running})
        warnings = list(store.warnings) + ([self.note] if self.note else [])
        by_width = time_left(records, cells, left, running, spec, now)
        known = [w.seconds for w in by_width.values()]
        seconds = None if any(x is None for x in known) else sum(known)
        return RunStatus(store.root, counts, running, stale, failures, seconds, max(workers, 1), warnings, by_width)


def run_status(run_dir: Path) -> RunStatus:
    """Where the run in ``run_dir`` stands now."""
    return StatusReader(run_dir).read()


def seconds_per_step(records: dict[str, CellRecord]) -> dict[int, tuple[float, int]]:
    """{width: (measured training seconds per step per cell, cells measured)}: the median over
    the width's finished records of wall_s / stack_size / steps."""
    rates: dict[int, list[float]] = {}
    for r in records.values():
        res = r.result
        try:
            if r.finished and res.wall_s > 0 and res.stack_size > 0 and r.steps > 0:
                rates.setdefault(int(r.width), []).append(res.wall_s / res.stack_size / r.steps)
        except (TypeError, ValueError):  # a record without timings (or hand-made): not a measurement
            continue
    return {w: (statistics.median(v), len(v)) for w, v in rates.items()}


def time_left(records: dict, cells: list, left: list, running: list, spec, now: float) -> dict[int, WidthLeft]:
    """Per width with cells ``left`` (running or pending): their seconds for one worker and
    what that rests on (``seconds_per_step``, or FLOPs-scaled from the nearest measured width)."""
    measured = seconds_per_step(records)
    flops: dict[int, float] = {}
    for c in cells:  # model FLOPs per token of each width (all of a width's cells share the model)
        flops.setdefault(c.width, _flops_per_token(c))
    started = {cid: cl.started for cid, _, cl in running}
    out = {}
    for width in sorted({c.width for c in left}):
        mine = [c for c in left if c.width == width]
        if width in measured:
            rate, n = measured[width]
            basis = f"measured at width {width}: {rate * 1e3:.3g} ms per step per cell over {n} cell{'s' * (n > 1)}"
        elif measured and flops.get(width):
            ref = min(measured, key=lambda w: (abs(math.log(w / width)), -w))
            rate = measured[ref][0] * flops[width] / flops[ref] if flops.get(ref) else None
            basis = (
                f"scaled by FLOPs from width {ref}, which measured {measured[ref][0] * 1e3:.3g} ms per step per "
                f"cell; width {width} has no finished cell yet"
            )
        else:
            rate, basis = None, "unknown until a cell finishes"
        if rate is None:
            out[width] = WidthLeft(len(mine), None, basis)
            continue
        seconds = sum(c.steps * rate for c in mine if c.id not in started)
        stacks: dict[float, list] = {}
        for c in mine:
            if c.id in started:
                stacks.setdefault(started[c.id], []).append(c)
        for t0, stack in stacks.items():  # a running stack: its cost less the time it has run
            seconds += max(0.0, sum(c.steps * rate for c in stack) - max(0.0, now - t0))
        out[width] = WidthLeft(len(mine), seconds, basis)
    return out


def _flops_per_token(cell) -> float:
    """From plan.json, or lwscale's own model's (status plans only a spec without model.factory)."""
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
    for s in st.stacks:
        n = len(s.cells)
        lines.append(
            f"running: stack of {n} cell{'s' * (n > 1)} (width {s.width}: {', '.join(s.cells)}) on "
            f"{s.worker}, started {fmt_duration(now - s.started)} ago, heartbeat "
            f"{fmt_duration(now - s.heartbeat)} ago"
        )
    for cid, w, cl in st.stale:
        if cl.broken:
            lines.append(
                f"unreadable claim: cell {cid} (width {w}): not a claim lwscale wrote; the next worker takes it over"
            )
            continue
        lines.append(
            f"stale claim: cell {cid} (width {w}) by {cl.worker}, heartbeat "
            f"{fmt_duration(now - cl.heartbeat)} ago; the next worker takes it over"
        )
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
        lines.append(
            f"time left: about {fmt_duration(st.seconds_left / st.workers)} for {left} cells with "
            f"{st.workers} worker{'s' if st.workers > 1 else ''}; per width, for one worker:"
        )
        for w, x in st.left_by_width.items():
            lines.append(f"  width {w}: {x.cells} cell{'s' * (x.cells > 1)}, {fmt_duration(x.seconds)} ({x.basis})")
    return Group(table, *(Text(x) for x in lines))


def to_json(st: RunStatus) -> dict:
    """The status as plain data (``lwscale status --json``): counts per width and status, the
    running stacks, stale claims, failures, and the time left per width with its basis."""
    now = time.time()

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")

    left = st.total["running"] + st.total["pending"]
    seconds = None if st.seconds_left is None else st.seconds_left / st.workers
    return {
        "run": str(st.root),
        "counts": {str(w): c for w, c in st.counts.items()},
        "total": st.total,
        "workers": st.workers,
        "running": [
            {
                "worker": s.worker,
                "width": s.width,
                "cells": s.cells,
                "started": iso(s.started),
                "heartbeat": iso(s.heartbeat),
                "started_ago_s": max(0.0, now - s.started),
                "heartbeat_ago_s": max(0.0, now - s.heartbeat),
            }
            for s in st.stacks
        ],
        "stale": [
            {"cell": cid, "width": w, "worker": cl.worker, "broken": cl.broken, "heartbeat": iso(cl.heartbeat)}
            for cid, w, cl in st.stale
        ],
        "failures": [{"cell": cid, "reason": reason} for cid, reason in st.failures],
        "time_left": {
            "seconds": 0.0 if left == 0 else seconds,
            "cells": left,
            "workers": st.workers,
            "basis": "per width: measured seconds per step per cell x steps (or scaled by FLOPs from "
            "the nearest measured width), summed, divided by the live workers",
            "by_width": {
                str(w): {"cells": x.cells, "seconds": x.seconds, "basis": x.basis} for w, x in st.left_by_width.items()
            },
        },
        "warnings": st.warnings,
    }
