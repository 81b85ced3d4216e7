"""``lwscale diagnose RUN_DIR``: sigma_max and gain tables, the width-exponent fit, the
1/2-exponent check, the implied wd exponent as a ``custom`` rule, and the Figure-1 check.

Everything is read from the run directory (the loaded run, ``run.load_run``, each
cell's record, and the spec's model and schedule); nothing is trained. sigma_max is
normalised per matrix type by that type's own optimizer group (its width multiplier's
peak lr and coupled wd) and by the *equilibrium scale* S of the weight-norm recurrence
over the cell's lr schedule (``equilibrium_scale``; derivation in docs/diagnostics.md),
not by sqrt(lr_peak/wd): under a decaying schedule the end-of-run sigma_max depends on
how many timescales a cell completed, and S accounts for that. The fits' intervals come
from a cluster bootstrap over cells (``fits.cluster_slope``).

Beside the sigma_max-derived g, the width and horizon exponents of the loss-optimal weight
decay itself, read from the loss surface (``horizon.fit_all``), each as a ready rule; they
need no diagnostics, so a run trained without them gets that section alone.

``diagnose(run, points, optima)`` returns the report as a ``Report`` (tables + notes + a
JSON-able dict); ``write_diagnose`` writes it as RUN_DIR/diagnose.md
and diagnose.json, with the figures of diagnose_figures.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lwscale.core.errors import UserError
from lwscale.core.files import atomic_write_text, json_default, strict_json
from lwscale.reports.diagnose_figures import write_figures
from lwscale.reports.diagnose_points import (
    COLLAPSED,
    FFN_TYPES,
    STEADY_TIMESCALES,
    collapsed,
    done_cells,
    load_points,
    ordered_types,
    rows_at,
    steady,
    unique_cells,
)
from lwscale.reports.fits import Slope, cluster_slope
from lwscale.reports.fmt import num
from lwscale.reports.horizon import best_fit, fit_all, fit_lambda_data, fit_table, rule_snippet
from lwscale.reports.run import Run
from lwscale.reports.tables import Tab, argmin, cell_stats, mean_se
from lwscale.rundir.store import Store
from lwscale.science.rules import get_rule

# Figure 1 of arXiv 2510.15262 (docs/science.md §5), sigma_max relative to base (8.2), read to +-5%
PAPER_RATIOS = {(1.0, 2.0): "0.68 (5.6/8.2)", (1.0, 0.5): "1.49 (12.2/8.2)"}
PAPER_JOINT = "0.91-1.07 (7.5-8.8 / 8.2)"


# ---- fits ---------------------------------------------------------------------------------------
def width_exponent(points: pd.DataFrame, peak: bool = False) -> dict[str, Slope]:
    """alpha in sigma_max ~ S * d**alpha, S the equilibrium scale of the row's own matrix
    group over its schedule (``with_scales``; sqrt(lr/2wd) in steady state at a constant lr):
    per matrix type, and pooled over types (one intercept per type). The 95% intervals come
    from a cluster bootstrap over cells (``fits.cluster_slope``). ``points`` should already
    be the steady-state rows. ``peak``: divide by sqrt(lr_peak/wd) instead (the schedule
    ignored; shown beside the fit, to say how much the schedule moved it)."""
    p = unique_cells(points)
    y = np.log(p["sigma"] / (np.sqrt(p["lr_group"] / p["wd_group"]) if peak else p["eq_scale"]))
    x = np.log(p["width"].astype(float))
    out = {
        t: cluster_slope(x[p["type"] == t], y[p["type"] == t], p["cell_id"][p["type"] == t])
        for t in ordered_types(p["type"])
    }
    out["pooled"] = cluster_slope(x, y, p["cell_id"], p["type"])
    return out


def half_exponent(points: pd.DataFrame, peak: bool = False) -> dict[int, Slope]:
    """At each width, the exponent beta in sigma_max ~ h * (lr/wd)**beta (the paper: 1/2),
    lr and wd the row's own group's peak lr and coupled wd, h its ``schedule_factor`` (the
    share of the peak lr's equilibrium its schedule ended at), pooled over matrix types (one
    intercept per type), with a cluster-bootstrap interval over cells. ``peak``: h = 1
    (the schedule ignored)."""
    p = unique_cells(points)
    out = {}
    for width, sub in p.groupby("width"):
        x = np.log(sub["lr_group"] / sub["wd_group"])
        y = np.log(sub["sigma"] / (1.0 if peak else sub["schedule_factor"]))
        out[int(width)] = cluster_slope(x, y, sub["cell_id"], sub["type"])
    return out


def custom_rule_snippet(alpha: Slope, a: float = 1.0) -> str:
    """The spec snippet of the rule that holds sigma_max flat under the fitted alpha:
    lr ~ m**-a and wd ~ m**g with g = 2*alpha - a."""
    g = 2 * alpha.value - a
    lo, hi = 2 * alpha.lo - a, 2 * alpha.hi - a
    ci = (
        f"95% interval [{lo:.2f}, {hi:.2f}] = 2*alpha's - a"
        if math.isfinite(lo) and math.isfinite(hi)
        else "no interval"
    )
    return (
        f"rules:\n  - sqrt-wd\n  - {{name: custom, a: {a:g}, g: {g:.3f}}}   "
        f"# g = 2*alpha - a from the fit, alpha = {alpha.value:.3f}; {ci}"
    )


# ---- report ----------------------------------------------------------------------------------
@dataclass
class Report:
    tables: list[Tab] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    snippet: str | None = None
    lambda_snippet: str | None = None
    data: dict = field(default_factory=dict)

    def markdown(self, title: str) -> str:
        out = [f"# {title}", ""]
        for t in self.tables:
            out += [f"## {t.title}", "", t.markdown(), ""]
        out += [f"- {n}" for n in self.notes]
        if self.snippet:
            out += ["", "Implied wd exponent as a rule for your spec:", "", "```yaml", self.snippet, "```"]
        if self.lambda_snippet:
            out += ["", LAMBDA_SNIPPET_TITLE + ":", "", "```yaml", self.lambda_snippet, "```"]
        return "\n".join(out) + "\n"


LAMBDA_SNIPPET_TITLE = "The loss-optimal wd's width and horizon exponents as a rule for your spec"


def lambda_section(run: Run, report: Report) -> None:
    """The exponents of the loss-optimal weight decay across widths and lengths
    (``horizon.fit_all``), per rule's grid, and the ready rule of the best-placed fit."""
    if len(run.panels()) < 2:
        return
    fits = fit_all(run)
    report.tables.append(fit_table(fits))
    report.data["lambda_star"] = fit_lambda_data(fits)
    best = best_fit(fits)
    if best is not None:
        report.lambda_snippet = rule_snippet(best, get_rule(best.rule).a)
    if any(f.edge for f in fits):
        report.notes.append(
            "lambda*: an optimum on its grid's lowest or highest lambda may lie beyond it, which "
            "biases the exponents toward 0; widen the lambda axis there"
        )


def transferred(points: pd.DataFrame, order: list[str] | None = None) -> list[tuple[str, float, float]]:
    """(rule, eta, wd) of each rule's grid optimum (mean over seeds) at the smallest width
    with finished cells (the proxy), at its shortest length: the points the tables and figures
    show, in the rule ``order`` given (the spec's, ``Run.rules``), others after it alphabetically."""
    keys = (
        ["rule", "width", "steps", "eta", "wd", "seed"] if "steps" in points else ["rule", "width", "eta", "wd", "seed"]
    )
    stats = cell_stats(done_cells(points).drop_duplicates(keys))
    out = []
    for rule, sub in stats.groupby("rule"):
        sub = sub[sub["width"] == sub["width"].min()]
        if "steps" in sub:
            sub = sub[sub["steps"] == sub["steps"].min()]
        best = argmin(sub)
        if best is not None:
            out.append((rule, float(best["eta"]), float(best["wd"])))
    rank = {r: i for i, r in enumerate(order or [])}
    return sorted(out, key=lambda o: (rank.get(o[0], len(rank)), o[0]))


def optimum_tables(points: pd.DataFrame, optima: list[tuple[str, float, float]], report: Report) -> None:
    """sigma_max and gain per width and type at each rule's transferred optimum (``optima``,
    from ``transferred``), with the target/proxy ratio (largest width over smallest)."""
    done = done_cells(points)
    for rule, eta, wd in optima:
        sub = rows_at(done, rule, eta, wd)
        if sub.empty:
            continue
        # one column per width, or per (width, steps) in a run of several lengths
        multi = "steps" in sub and sub.groupby("width")["steps"].nunique().max() > 1
        sub = sub.assign(_col=list(zip(sub["width"], sub["steps"])) if multi else sub["width"])
        mean = sub.groupby(["_col", "type"])[["sigma", "gain_end"]].agg(lambda v: mean_se(v)[0])  # over seeds
        widths = sorted(sub["_col"].unique())
        names = [f"d={w[0]},S={w[1]}" if multi else f"d={w}" for w in widths]
        types = ordered_types(sub["type"])
        entry = {}
        for col, name in (("sigma", "sigma_max"), ("gain_end", "gain")):
            rows = []
            for t in types:
                vals = [mean[col].get((w, t), math.nan) for w in widths]
                ratio = vals[-1] / vals[0] if len(widths) > 1 and vals[0] else math.nan
                rows.append([t] + [num(v, ".3g") for v in vals] + [num(ratio, ".3g")])
                keys = [f"{w[0]}/{w[1]}" for w in widths] if multi else list(map(int, widths))
                entry.setdefault(name, {})[t] = {"by_width": dict(zip(keys, vals)), "ratio": ratio}
            report.tables.append(
                Tab(
                    f"{rule}: {name} at the transferred optimum (eta {eta:.3g}, wd {wd:.3g})",
                    ["type"] + names + [f"ratio {names[-1]}/{names[0]}" if len(widths) > 1 else "ratio"],
                    rows,
                )
            )
        report.data.setdefault("transferred", {})[rule] = {"eta": eta, "wd": wd, **entry}


NORMALISATION = (
    "sigma_max is divided by S, the equilibrium scale of the weight-norm recurrence "
    "||W||^2 <- (1 - lr_t*wd)^2 ||W||^2 + lr_t^2 C over each cell's own lr schedule, with each "
    "matrix type's own group lr and wd (S ~ sqrt(lr/2wd) in steady state at a constant lr; "
    "docs/diagnostics.md)"
)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def exponent_section(points: pd.DataFrame, report: Report) -> None:
    done = unique_cells(done_cells(points))
    qual = steady(points)
    n_cells, n_qual = done["cell_id"].nunique(), qual["cell_id"].nunique()
    report.notes.append(
        f"steady state: {n_qual} of {n_cells} finished cells completed at least "
        f"{STEADY_TIMESCALES:g} timescales sum_t lr_t*wd and enter the fits"
    )
    report.notes.append(
        f"normalisation: {NORMALISATION}; intervals are 95% cluster-bootstrap intervals over "
        "cells (their matrix types resampled together)"
    )
    if points.attrs.get("group_note"):
        report.notes.append(points.attrs["group_note"])
    mixed = sorted(set(points.loc[points["lr_group"].isna() & points["sigma"].notna(), "type"]))
    if mixed:
        report.notes.append(
            f"no single optimizer group: {', '.join(mixed)} (matrices of one type with different "
            "width multipliers); left out of the fits"
        )
    dead = collapsed(qual)
    gone = unique_cells(qual[dead])
    if not gone.empty:
        what = ", ".join(
            f"{t} x{n}" for t, n in gone["type"].value_counts().reindex(ordered_types(gone["type"])).items()
        )
        report.notes.append(
            f"collapsed: {len(gone)} matrices in {gone['cell_id'].nunique()} steady-state cells "
            f"({what}) ended with sigma_max/S below {COLLAPSED:.0%} of their type's median "
            "at their width (weight decay drove them to ~0); they are left out of the fits"
        )
        report.data["collapsed"] = [
            {"cell_id": r.cell_id, "width": int(r.width), "type": r.type, "sigma": float(r.sigma)}
            for r in gone.itertuples()
        ]
        qual = qual[~dead]
    report.data["qualified_cells"], report.data["finished_cells"] = int(n_qual), int(n_cells)
    report.data["normalisation"] = "equilibrium scale S over the schedule, per matrix group"
    h = qual["schedule_factor"].dropna()
    if not h.empty:
        report.notes.append(
            f"schedule factor h = S/sqrt(lr_peak/2wd) of the steady-state cells: {h.min():.2f} to "
            f"{h.max():.2f} (1 = steady state at a constant lr); the fits divide it out, and the "
            "tables show beside them what dividing by sqrt(lr_peak/wd) alone gives"
        )
        report.data["schedule_factor_range"] = [float(h.min()), float(h.max())]
    if qual["width"].nunique() >= 2:
        fits, peak = width_exponent(qual), width_exponent(qual, peak=True)
        report.tables.append(
            Tab(
                "width exponent alpha in sigma_max ~ S * d^alpha, S the schedule's equilibrium "
                "scale ~ sqrt(lr/2wd) (paper: ~0.75)",
                ["type", "alpha [95% CI]", "points", "cells", "alpha with sqrt(lr_peak/wd)"],
                [[t, s.text(), str(s.n), str(s.clusters), num(peak[t].value, ".3f")] for t, s in fits.items()],
            )
        )
        report.data["alpha"] = {t: {**s.to_dict(), "peak_lr_value": _finite(peak[t].value)} for t, s in fits.items()}
        if math.isfinite(fits["pooled"].value):
            report.snippet = custom_rule_snippet(fits["pooled"])
            pooled = fits["pooled"]
            report.data["implied_g"] = 2 * pooled.value - 1
            report.data["implied_g_ci95"] = [_finite(2 * pooled.lo - 1), _finite(2 * pooled.hi - 1)]
    else:
        report.notes.append("width exponent: not fitted, the steady-state cells cover fewer than 2 widths")
    halves = {w: s for w, s in half_exponent(qual).items() if math.isfinite(s.value)}
    if halves:
        peak = half_exponent(qual, peak=True)
        report.tables.append(
            Tab(
                "1/2-exponent check: beta in sigma_max ~ h * (lr/wd)^beta at a fixed width, h the "
                "schedule factor S/sqrt(lr/2wd) (paper: 0.5)",
                ["width", "beta [95% CI]", "points", "cells", "0.5 inside the interval", "beta with h = 1"],
                [
                    [
                        str(w),
                        s.text(),
                        str(s.n),
                        str(s.clusters),
                        ("yes" if s.lo <= 0.5 <= s.hi else "no") if math.isfinite(s.se) else "–",
                        num(peak[w].value, ".3f"),
                    ]
                    for w, s in halves.items()
                ],
            )
        )
        report.data["half_exponent"] = {
            str(w): {**s.to_dict(), "peak_lr_value": _finite(peak[w].value)} for w, s in halves.items()
        }
    else:
        report.notes.append("1/2-exponent check: needs steady-state cells with at least 2 values of lr/wd at one width")


def figure1_section(points: pd.DataFrame, pairs: list[tuple[float, float]], report: Report) -> None:
    """Ratios of the FFN matrices' sigma_max and gain to the base pair (the first), next to the paper's."""
    eta0, wd0 = pairs[0]
    ffn = done_cells(points)
    ffn = ffn[ffn["type"].isin(FFN_TYPES)]
    checks = []
    for width, sub in ffn.groupby("width"):
        per = sub.groupby(["eta", "wd"])[["sigma", "gain_end"]].mean()
        ts = sub.groupby(["eta", "wd"])["timescales"].min()
        if (eta0, wd0) not in per.index:
            report.notes.append(f"Figure-1 check at d={width}: the base pair ({eta0:g}, {wd0:g}) did not finish")
            continue
        s0, g0 = per.loc[(eta0, wd0)]
        rows = [
            [
                f"base ({eta0:.3g}, {wd0:.3g})",
                num(s0, ".3g"),
                "1",
                "1",
                "1",
                "",
                num(g0, ".3g"),
                "1",
                num(ts[(eta0, wd0)], ".3g"),
            ]
        ]
        for eta, wd in pairs[1:]:
            if (eta, wd) not in per.index:
                rows.append([f"({eta:.3g}, {wd:.3g})", "not finished"] + [""] * 7)
                continue
            fe, fw = eta / eta0, wd / wd0
            s, g = per.loc[(eta, wd)]
            ratio, expect = s / s0, math.sqrt(fe / fw)
            joint = math.isclose(fe, fw, rel_tol=1e-9)
            name = f"(eta, wd) x{fe:g}" if joint else f"wd x{fw:g}" if fe == 1 else f"eta x{fe:g}, wd x{fw:g}"
            tol = 0.15 if joint else 0.20
            ok = abs(ratio / expect - 1) <= tol
            paper = PAPER_JOINT if joint else PAPER_RATIOS.get((round(fe, 9), round(fw, 9)), "–")
            rows.append(
                [
                    name,
                    num(s, ".3g"),
                    f"{ratio:.3f}",
                    f"{expect:.3f}",
                    paper,
                    f"{'pass' if ok else 'FAIL'} (±{tol:.0%})",
                    num(g, ".3g"),
                    f"{g / g0:.3f}",
                    num(ts[(eta, wd)], ".3g"),
                ]
            )
            checks.append(
                {
                    "width": int(width),
                    "cell": name,
                    "eta": eta,
                    "wd": wd,
                    "sigma_max": s,
                    "ratio": ratio,
                    "expected": expect,
                    "tolerance": tol,
                    "pass": bool(ok),
                    "gain_ratio": g / g0,
                }
            )
        report.tables.append(
            Tab(
                f"Figure-1 check at d={width}: FFN sigma_max (gate, up, down; block-averaged) relative to base",
                [
                    "cell",
                    "sigma_max",
                    "ratio",
                    "sqrt(eta_f/wd_f)",
                    "paper",
                    "check",
                    "gain",
                    "gain ratio",
                    "timescales",
                ],
                rows,
            )
        )
    report.data["figure1"] = checks


def diagnose(run: Run, points: pd.DataFrame, optima: list[tuple[str, float, float]]) -> Report:
    """The report of ``points`` (``load_points``) at the transferred optima (``transferred``)."""
    report = Report()
    optimum_tables(points, optima, report)
    exponent_section(points, report)
    if run.spec.grid.pairs is not None:
        figure1_section(points, run.spec.grid.points(), report)
    else:
        lambda_section(run, report)
    report.data["run"] = str(run.root)
    return report


def write_diagnose(run: Run) -> Report:
    """Diagnose ``run`` and write RUN_DIR/diagnose.md, diagnose.json and figures/diagnose-*.png,
    printing nothing: what ``lwscale diagnose`` writes, and what ``lwscale report`` runs so
    that its page is the same before and after a diagnose. A UserError when no cell has
    diagnostics. The figures' paths are in ``report.data["figures"]``."""
    root = run.root
    records = Store(root).records()  # read once for the report and the figures
    try:
        points = load_points(run, records)
    except UserError as exc:  # no sigma_max: the loss surface's own exponents still stand
        report = Report(notes=[str(exc)])
        if run.spec.grid.pairs is None:
            lambda_section(run, report)
        if not report.tables:
            raise
        points = None
    optima = None
    if points is not None:
        optima = transferred(points, run.rules)
        report = diagnose(run, points, optima)
    figures = [] if points is None else write_figures(root, points, records, run.spec.grid.pairs is not None, optima)
    report.data["figures"] = [str(p.relative_to(root)) for p in figures]
    atomic_write_text(
        root / "diagnose.md",
        report.markdown(f"lwscale diagnose: {root.name}")
        + "\n"
        + "\n".join(f"![{p.stem}]({p.relative_to(root)})" for p in figures)
        + "\n",
    )
    atomic_write_text(root / "diagnose.json", json.dumps(strict_json(report.data), indent=1, default=json_default))
    return report
