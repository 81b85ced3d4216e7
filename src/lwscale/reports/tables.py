"""Loss tables from results.csv: mean over seeds (and its standard error) per grid cell.

``mean_se`` is the one place seeds are aggregated; ``cell_stats`` applies it per grid cell,
``paired`` to the difference of two cells seed by seed. ``finished`` says which rows count
(done, with a finite loss) and ``argmin`` picks the lowest-loss one of them.
``Tab`` is a table built once as plain text and rendered both to Rich and to Markdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rich.markup import escape
from rich.table import Table

from lwscale.reports.fmt import pm
from lwscale.science.rules import STEADY_TIMESCALES


@dataclass
class Tab:
    """A table of plain-text cells, built once: ``rich()`` for the terminal, ``markdown()``
    for report files (the caller places the title there)."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    left: int = 1  # leading columns justified left in Rich; the rest (numbers) right
    # (row, column) -> "best" (bold green in Rich, bold in Markdown, starred) or "bad" (red in Rich)
    marks: dict[tuple[int, int], str] = field(default_factory=dict)

    def rich(self) -> Table:
        # min_width keeps the title on one line: Rich wraps a title to its (narrow) table's width
        table = Table(title=escape(self.title), title_justify="left", min_width=len(self.title))
        for i, c in enumerate(self.columns):
            table.add_column(escape(c), justify="left" if i < self.left else "right")
        style = {"best": "[bold green]{} ★[/]", "bad": "[red]{}[/]"}
        for i, r in enumerate(self.rows):
            table.add_row(*(style.get(self.marks.get((i, j)), "{}").format(escape(c)) for j, c in enumerate(r)))
        return table

    def markdown(self) -> str:
        def line(i, cells) -> str:
            cells = [c.replace("|", "\\|") for c in cells]
            cells = [f"**{c}** ★" if self.marks.get((i, j)) == "best" else c for j, c in enumerate(cells)]
            return "| " + " | ".join(cells) + " |"

        return "\n".join(
            [line(-1, self.columns), "|" + "---|" * len(self.columns)] + [line(i, r) for i, r in enumerate(self.rows)]
        )


def rule_order(spec, present) -> list[str]:
    """The rule labels in ``present`` in the spec's order, then any others (an earlier spec's)
    alphabetically: the order every table, figure and report lists rules in."""
    named = [r.label() for r in spec.rule_objects()]
    have = set(present)
    return [r for r in named if r in have] + sorted(have - set(named))


def mean_se(values) -> tuple[float, float, int]:
    """Mean over seeds, its standard error sd(ddof=1)/sqrt(n) (NaN below 2 seeds) and n, of
    the values that are not NaN (NaN marks a seed that did not finish). Every report that
    aggregates seeds goes through here."""
    s = pd.Series(values, dtype=float).dropna()
    n = len(s)
    return (float(s.mean()) if n else math.nan, float(s.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan, n)


def paired(a: dict, b: dict) -> tuple[float, float, int]:
    """Mean of a[seed] - b[seed] over the seeds both have finished, its standard error (NaN
    below 2) and that count. Cells with one seed share its batches and init (common random
    numbers), so a difference between them is far less noisy than their two se's suggest."""
    common = [k for k in a if k in b and math.isfinite(a[k]) and math.isfinite(b[k])]
    return mean_se([a[k] - b[k] for k in common])


def finished(frame: pd.DataFrame, column: str = "loss") -> pd.Series:
    """Which rows finished (status ``done``) with a finite ``column``: the rows a loss (or a
    sigma_max) is read from. A boolean mask over a results or stats frame (a bool for one row)."""
    return (frame["status"] == "done") & np.isfinite(np.asarray(frame[column], dtype=float))


def cell_stats(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (rule, width, steps, eta, wd) (``steps`` when the frame has it): mean and
    standard error of the final validation loss over the seeds that finished (``done``), the
    seed count, and the worst status."""

    def status(s: pd.Series) -> str:
        for st in ("failed", "diverged", "running", "pending"):
            if (s == st).any() and not (s == "done").any():
                return st
        return "done"

    keys = ["rule", "width", "steps", "eta", "wd"] if "steps" in df else ["rule", "width", "eta", "wd"]
    g = df.assign(_done=df["final_val_loss"].where(finished(df, "final_val_loss"))).groupby(
        keys, sort=True, dropna=False
    )
    out = g.agg(status=("status", status), timescales=("timescales", "mean")).reset_index()
    seeds = pd.DataFrame([mean_se(v) for _, v in g["_done"]], columns=["loss", "se", "n"], index=out.index)
    return out.join(seeds)[keys + ["loss", "n", "status", "timescales", "se"]]


def argmin(frame: pd.DataFrame) -> pd.Series | None:
    """The finished row of ``frame`` (a stats frame) with the lowest loss, among the rows with
    the most seeds finished; None when none finished. A cell still waiting for a seed (or with a
    seed diverged) has a mean over fewer seeds, a noisier number: it does not compete with the
    cells every seed has finished, which keeps every argmin on one seed set."""
    ok = np.array(finished(frame), dtype=bool)  # numpy from here: the bootstrap calls this thousands of times
    if not ok.any():
        return None
    if "n" in frame:
        n = frame["n"].to_numpy()
        ok &= n == n[ok].max()
    rows = np.flatnonzero(ok)
    return frame.iloc[rows[np.argmin(frame["loss"].to_numpy(float)[rows])]]  # the first lowest, as idxmin


def best_cells(stats: pd.DataFrame) -> pd.DataFrame:
    """The grid argmin (mean over seeds) of each (rule, width) and, with a ``steps`` column, horizon."""
    keys = ["rule", "width", "steps"] if "steps" in stats else ["rule", "width"]
    best = (argmin(sub) for _, sub in stats.groupby(keys, sort=True))
    return stats.loc[[b.name for b in best if b is not None]].reset_index(drop=True)


def loss_tab(stats: pd.DataFrame, rule: str, width: int, steps: int | None = None) -> Tab:
    """Rows lambda, columns eta (base coordinates): mean ± se over seeds; the best cell marked,
    a diverged or failed one named. ``steps``: that horizon only (and named in the title)."""
    sub = stats[(stats["rule"] == rule) & (stats["width"] == width)]
    if steps is not None:
        sub = sub[sub["steps"] == steps]
    etas, wds = sorted(sub["eta"].unique()), sorted(sub["wd"].unique())
    best = argmin(sub)
    best_key = (best["eta"], best["wd"]) if best is not None else None
    index = {(r.eta, r.wd): r for r in sub.assign(ok=finished(sub)).itertuples()}
    rows, marks = [], {}
    for i, w in enumerate(wds):
        cells = [f"{w:.3g}"]
        for j, e in enumerate(etas, start=1):
            r = index.get((e, w))
            if r is None:
                cells.append("")
            elif not r.ok:
                cells.append({"diverged": "diverged", "failed": "failed"}.get(r.status, "·"))
                if r.status in ("diverged", "failed"):
                    marks[(i, j)] = "bad"
            else:
                cells.append(pm(r.loss, r.se))  # se is NaN below 2 seeds: no ± part
                if (e, w) == best_key:
                    marks[(i, j)] = "best"
        rows.append(cells)
    where = f"width {width}" + (f", {steps:,} steps" if steps is not None else "")
    return Tab(
        f"{rule}, {where}: final validation loss (mean over seeds)",
        ["λ \\ η"] + [f"{e:.3g}" for e in etas],
        rows,
        marks=marks,
    )


def loss_table(stats: pd.DataFrame, rule: str, width: int, steps: int | None = None) -> Table:
    """``loss_tab`` for the terminal."""
    return loss_tab(stats, rule, width, steps).rich()


def plan_table(plan) -> Table:
    """Per rule, width and horizon: sweep points, unique cells, steps, tokens, and at the grid centre (for
    explicit pairs: the slowest pair) the matrix timescale tau = 1/(lr*wd) in steps and the
    timescales completed sum_t lr_t*wd."""
    from lwscale.sweep.plan import centre_cells, reference_name

    spec = plan.spec
    table = Table(title=f"plan (tau and timescales at {reference_name(spec)}, matrix params)", title_justify="left")
    for col in ("rule", "width", "m", "points", "cells", "steps", "tokens/cell", "tau", "timescales"):
        table.add_column(col, justify="right")
    for rule, width, c in centre_cells(plan):
        mine = [cid for lab, cid in plan.labels if lab.rule == rule and lab.width == width and lab.steps == c.steps]
        ids, n_points = set(mine), len(mine)
        ts, tau = c.matrix_timescales(), c.matrix_tau()
        ts_txt = f"{ts:.2f}" if math.isfinite(ts) else "inf"
        table.add_row(
            rule,
            str(width),
            f"{width / spec.model.d0:g}",
            str(n_points),
            str(len(ids)),
            str(c.steps),
            f"{c.steps * spec.train.batch_size * spec.model.seq_len:,}",
            f"{tau:,.0f}" if math.isfinite(tau) else "inf",
            f"[yellow]{ts_txt}[/]" if ts < STEADY_TIMESCALES else ts_txt,
        )
    return table


def shared_cells_note(plan) -> str | None:
    """Why the plan has fewer cells than sweep points, when it does: one line for the plan."""
    points, cells = len(plan.labels), len(plan.cells)
    if cells == points:
        return None
    return (
        f"{points} sweep points are {cells} distinct cells: a cell is one model and one physical (lr, wd) "
        "per parameter class, and points that several rules map to the same one share it (at the base "
        "width every muP rule gives the same lr and wd)"
    )


def timescale_warning(plan) -> str | None:
    """One line naming every (rule, width, and horizon S in a run of several) whose grid-centre
    (or slowest-pair) cell completes < 3 timescales: each horizon is judged by its own cells."""
    from lwscale.sweep.plan import centre_cells, reference_name

    multi = plan.spec.multi_horizon
    low = [(rule, width, c.steps, c.matrix_timescales()) for rule, width, c in centre_cells(plan)]
    low = [
        f"{rule} d={width}{f' S={steps}' if multi else ''} ({ts:.2f})"
        for rule, width, steps, ts in low
        if ts < STEADY_TIMESCALES
    ]
    if not low:
        return None
    return (
        f"{reference_name(plan.spec)} completes fewer than 3 AdamW timescales 1/(lr*wd) at "
        + ", ".join(low)
        + ": those cells are not in steady state, so the sweep tests eta more than wd; train longer or raise wd"
    )
