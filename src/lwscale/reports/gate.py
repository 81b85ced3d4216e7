"""The validity gate, read before any transfer result (docs/science.md §4): a comparison of
width-scaling rules for weight decay means something only when

1. **wider is better at the optimum**: the best finished target cell (any rule) has a lower
   loss than the best proxy cell, so the target is not undertrained or mis-parametrized;
2. **the optimum is in steady state**: the cells at the target's optimum complete at least
   ``MIN_TIMESCALES`` AdamW timescales sum_t lr_t*wd (matrix parameters). Short of that the
   weight decay has not acted long enough to set the weights' scale, and the grid tests
   eta more than lambda. "At the optimum" is the best target cell of every rule's own grid
   and of all rules pooled: each is a place a reader takes the target's optimum to be.

``gate`` returns plain data (also in transfer.json); ``gate_tab`` the table that
``lwscale transfer`` and report.md show above the transfer results.
"""

from __future__ import annotations

import math

import pandas as pd

from lwscale.reports.fmt import num
from lwscale.reports.tables import Tab, argmin
from lwscale.science.rules import STEADY_TIMESCALES

MIN_TIMESCALES = STEADY_TIMESCALES


def _cell(row: pd.Series) -> dict:
    ts = row.get("timescales", math.nan)
    return {
        "rule": row["rule"],
        "eta": float(row["eta"]),
        "wd": float(row["wd"]),
        "loss": float(row["loss"]),
        "timescales": float(ts) if ts is not None and math.isfinite(ts) else None,
    }


def gate(
    stats: pd.DataFrame, proxy: int, best_target: pd.Series | None, rule_optima: dict[str, pd.Series | None]
) -> dict | None:
    """Both checks, each with ``holds`` (True, False, or None when it cannot be read), or None
    when no target cell has finished. ``best_target``: the best target cell of any rule;
    ``rule_optima``: each rule's best target cell (``transfer.transfer`` finds them once)."""
    if best_target is None:
        return None
    best_proxy = argmin(stats[stats["width"] == proxy])
    wider = {
        "holds": None if best_proxy is None else bool(best_target["loss"] < best_proxy["loss"]),
        "proxy_best": None if best_proxy is None else _cell(best_proxy),
        "target_best": _cell(best_target),
    }
    optima = {"pooled": _cell(best_target)} | {r: _cell(o) for r, o in rule_optima.items() if o is not None}
    known = [o["timescales"] for o in optima.values() if o["timescales"] is not None]
    low = min(known) if known else None
    steady = {
        "holds": None if low is None or len(known) < len(optima) else bool(low >= MIN_TIMESCALES),
        "min_timescales": low,
        "optima": optima,
    }
    checks = (wider["holds"], steady["holds"])
    overall = False if False in checks else (True if all(checks) else None)
    return {
        "min_timescales_required": MIN_TIMESCALES,
        "wider_is_better": wider,
        "steady_state": steady,
        "holds": overall,
    }


VERDICT = {True: "holds", False: "FAILS", None: "unknown"}


def gate_tab(result: dict) -> Tab | None:
    """The gate as a table: one row per check, with the numbers behind it."""
    g = result.get("gate")
    if not g:
        return None
    from lwscale.reports.transfer_tables import ends

    p, t, _ = ends(result)
    w = g["wider_is_better"]
    pb, tb = w["proxy_best"], w["target_best"]
    wider = f"best width-{t} cell {tb['loss']:.4f} against best width-{p} cell " + (
        f"{pb['loss']:.4f}" if pb else "– (no finished proxy cell)"
    )
    s = g["steady_state"]
    need = g["min_timescales_required"]
    steady = "; ".join(
        f"{name} {num(o['timescales'], '.2f')} (η {o['eta']:.3g}, λ {o['wd']:.3g})" for name, o in s["optima"].items()
    )
    rows = [
        ["wider is better at the optimum", VERDICT[w["holds"]], wider],
        [f"the target's optimum completes ≥ {need:g} timescales Σ lr·wd", VERDICT[s["holds"]], steady],
    ]
    marks = {(i, 1): "bad" for i, holds in enumerate((w["holds"], s["holds"])) if holds is False}
    return Tab(
        f"validity gate, read before the transfer results: {VERDICT[g['holds']]}",
        ["check", "result", "numbers"],
        rows,
        left=3,
        marks=marks,
    )
