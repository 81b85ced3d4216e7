"""``lwscale diagnose RUN_DIR``: sigma_max and gain tables, the width-exponent fit, the
1/2-exponent check, the implied wd exponent as a ``custom`` rule, and the Figure-1 check.

Everything is read from the run directory (the loaded run, ``results.load_run``, and each
cell's record); nothing is trained. ``diagnose(run, points, optima)`` returns the report as a
``Report`` (tables + notes + a JSON-able dict), which ``run_diagnose`` prints with Rich and
writes as RUN_DIR/diagnose.md and diagnose.json, with the figures of spectra.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UserError
from ..model import MATRIX_TYPES
from .fits import Slope, slope
from .fmt import num
from .results import Run
from .tables import Tab, argmin, cell_stats, finished, mean_se

STEADY_TIMESCALES = 3.0
COLLAPSED = 0.01  # sigma_max/sqrt(lr/wd) below this share of its type's median at that width: ~0
FFN_TYPES = ("gate", "up", "down")
# Figure 1 of arXiv 2510.15262 (SCIENCE.md section 5), sigma_max relative to base (8.2), read to +-5%
PAPER_RATIOS = {(1.0, 2.0): "0.68 (5.6/8.2)", (1.0, 0.5): "1.49 (12.2/8.2)"}
PAPER_JOINT = "0.91-1.07 (7.5-8.8 / 8.2)"


# ---- the long table: one row per (sweep point, matrix type) ----------------------------------
def ordered_types(present) -> list[str]:
    """The matrix types in ``present``: the built-in model's q ... down in their order, then
    a user model's types (lwscale.diagnostics.user_types) in the order first seen."""
    seen = list(dict.fromkeys(present))
    return [t for t in MATRIX_TYPES if t in seen] + [t for t in seen if t not in MATRIX_TYPES]


def load_points(run: Run, records: dict) -> pd.DataFrame:
    """The run's results joined with each record's diagnostics (``records``: ``Store.records()``):
    one row per sweep point and matrix type with ``sigma`` (block-averaged end sigma_max) and
    ``gain_end`` (last eval's gain). A user error when no cell has diagnostics."""
    df = run.df
    rows = []
    for r in df.itertuples(index=False):
        diag = (records.get(r.cell_id) or {}).get("diagnostics") or {}
        sig = (diag.get("sigma_max") or {}).get("by_type") or {}
        gains = (diag.get("gain") or {}).get("by_type") or {}
        for t in ordered_types(list(sig) + list(gains)):
            if t in sig or t in gains:
                g = gains.get(t) or []
                rows.append({**r._asdict(), "type": t, "sigma": sig.get(t, math.nan),
                             "gain_end": g[-1] if g else math.nan})
    if not rows:
        raise UserError(f"{run.root}: no cell has diagnostics (train.diagnostics was off, or nothing finished yet)")
    cols = list(df.columns) + ["type", "sigma", "gain_end"]
    return pd.DataFrame(rows, columns=cols)


def steady(points: pd.DataFrame, min_timescales: float = STEADY_TIMESCALES) -> pd.DataFrame:
    """The rows of finished (``done``) cells that completed at least ``min_timescales``."""
    return points[finished(points, "sigma") & (points["timescales"] >= min_timescales)]


def collapsed(points: pd.DataFrame) -> pd.Series:
    """Rows whose matrix weight decay drove to (numerically) zero: sigma_max / sqrt(lr/wd)
    below COLLAPSED of its median over the type's cells at that width. A SwiGLU FFN does this at very many timescales
    (gate and up shrink together, their product's gradient with them). Such a matrix left
    the steady state sigma_max ~ sqrt(lr/wd) holds in, and its log would swamp a fit."""
    # against the law's own scale, so a grid's spread of lr/wd does not move the cut
    scaled = points["sigma"] / np.sqrt(points["lr_matrix"] / points["wd_matrix"])
    med = scaled.groupby([points["width"], points["type"]]).transform("median")
    return scaled < COLLAPSED * med


def unique_cells(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (physical cell, type): rules share their base-width cells."""
    return points.drop_duplicates(["cell_id", "type"])


# ---- fits ---------------------------------------------------------------------------------------
def width_exponent(points: pd.DataFrame) -> dict[str, Slope]:
    """alpha in sigma_max ~ sqrt(lr/wd) * d**alpha: per matrix type, and pooled over types
    (one intercept per type). ``points`` should already be the steady-state rows."""
    p = unique_cells(points)
    y = np.log(p["sigma"] / np.sqrt(p["lr_matrix"] / p["wd_matrix"]))
    x = np.log(p["width"].astype(float))
    out = {t: slope(x[p["type"] == t], y[p["type"] == t]) for t in ordered_types(p["type"])}
    out["pooled"] = slope(x, y, p["type"])
    return out


def half_exponent(points: pd.DataFrame) -> dict[int, Slope]:
    """At each width, the exponent beta in sigma_max ~ (lr/wd)**beta (the paper: 1/2),
    pooled over matrix types (one intercept per type)."""
    p = unique_cells(points)
    out = {}
    for width, sub in p.groupby("width"):
        x = np.log(sub["lr_matrix"] / sub["wd_matrix"])
        out[int(width)] = slope(x, np.log(sub["sigma"]), sub["type"])
    return out


def custom_rule_snippet(alpha: Slope, a: float = 1.0) -> str:
    """The spec snippet of the rule that holds sigma_max flat under the fitted alpha:
    lr ~ m**-a and wd ~ m**g with g = 2*alpha - a."""
    g = 2 * alpha.value - a
    lo, hi = 2 * alpha.lo - a, 2 * alpha.hi - a
    ci = f"95% interval [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) and math.isfinite(hi) else "no interval"
    return (f"rules:\n  - sqrt-wd\n  - {{name: custom, a: {a:g}, g: {g:.3f}}}   "
            f"# g = 2*alpha - a from the fit, alpha = {alpha.value:.3f}; {ci}")


# ---- report ----------------------------------------------------------------------------------
@dataclass
class Report:
    tables: list[Tab] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    snippet: str | None = None
    data: dict = field(default_factory=dict)

    def markdown(self, title: str) -> str:
        out = [f"# {title}", ""]
        for t in self.tables:
            out += [f"## {t.title}", "", t.markdown(), ""]
        out += [f"- {n}" for n in self.notes]
        if self.snippet:
            out += ["", "Implied wd exponent as a rule for your spec:", "", "```yaml", self.snippet, "```"]
        return "\n".join(out) + "\n"


def done_cells(points: pd.DataFrame) -> pd.DataFrame:
    """The rows of the cells that trained to the end (status ``done``), whatever their
    sigma_max and gain: a missing one is skipped where it is averaged."""
    return points[points["status"] == "done"]


def transferred(points: pd.DataFrame) -> list[tuple[str, float, float]]:
    """(rule, eta, wd) of each rule's grid optimum (mean over seeds) at the smallest width
    with finished cells (the proxy): the points the tables and figures show."""
    stats = cell_stats(done_cells(points).drop_duplicates(["rule", "width", "eta", "wd", "seed"]))
    out = []
    for rule, sub in stats.groupby("rule"):
        best = argmin(sub[sub["width"] == sub["width"].min()])
        if best is not None:
            out.append((rule, float(best["eta"]), float(best["wd"])))
    return out


def rows_at(points: pd.DataFrame, rule: str, eta: float, wd: float) -> pd.DataFrame:
    """The rows of ``rule`` at base (eta, wd), every width (values from the table itself)."""
    return points[(points["rule"] == rule) & (points["eta"] == eta) & (points["wd"] == wd)]


def optimum_tables(points: pd.DataFrame, optima: list[tuple[str, float, float]], report: Report) -> None:
    """sigma_max and gain per width and type at each rule's transferred optimum (``optima``,
    from ``transferred``), with the target/proxy ratio (largest width over smallest)."""
    done = done_cells(points)
    for rule, eta, wd in optima:
        sub = rows_at(done, rule, eta, wd)
        if sub.empty:
            continue
        mean = sub.groupby(["width", "type"])[["sigma", "gain_end"]].agg(lambda v: mean_se(v)[0])  # over seeds
        widths = sorted(sub["width"].unique())
        types = ordered_types(sub["type"])
        entry = {}
        for col, name in (("sigma", "sigma_max"), ("gain_end", "gain")):
            rows = []
            for t in types:
                vals = [mean[col].get((w, t), math.nan) for w in widths]
                ratio = vals[-1] / vals[0] if len(widths) > 1 and vals[0] else math.nan
                rows.append([t] + [num(v, ".3g") for v in vals] + [num(ratio, ".3g")])
                entry.setdefault(name, {})[t] = {"by_width": dict(zip(map(int, widths), vals)), "ratio": ratio}
            report.tables.append(Tab(f"{rule}: {name} at the transferred optimum (eta {eta:.3g}, wd {wd:.3g})",
                                     ["type"] + [f"d={w}" for w in widths]
                                     + [f"ratio d={widths[-1]}/d={widths[0]}" if len(widths) > 1 else "ratio"],
                                     rows))
        report.data.setdefault("transferred", {})[rule] = {"eta": eta, "wd": wd, **entry}


def exponent_section(points: pd.DataFrame, report: Report) -> None:
    done = unique_cells(done_cells(points))
    qual = steady(points)
    n_cells, n_qual = done["cell_id"].nunique(), qual["cell_id"].nunique()
    report.notes.append(f"steady state: {n_qual} of {n_cells} finished cells completed at least "
                        f"{STEADY_TIMESCALES:g} timescales sum_t lr_t*wd and enter the fits")
    dead = collapsed(qual)
    gone = unique_cells(qual[dead])
    if not gone.empty:
        what = ", ".join(f"{t} x{n}" for t, n in gone["type"].value_counts().reindex(ordered_types(gone["type"])).items())
        report.notes.append(f"collapsed: {len(gone)} matrices in {gone['cell_id'].nunique()} steady-state cells "
                            f"({what}) ended with sigma_max/sqrt(lr/wd) below {COLLAPSED:.0%} of their type's median "
                            "at their width (weight decay drove them to ~0); they are left out of the fits")
        report.data["collapsed"] = [{"cell_id": r.cell_id, "width": int(r.width), "type": r.type, "sigma": float(r.sigma)}
                                    for r in gone.itertuples()]
        qual = qual[~dead]
    report.data["qualified_cells"], report.data["finished_cells"] = int(n_qual), int(n_cells)
    if qual["width"].nunique() >= 2:
        fits = width_exponent(qual)
        report.tables.append(Tab("width exponent alpha in sigma_max ~ sqrt(lr/wd) * d^alpha (paper: ~0.75)",
                                 ["type", "alpha [95% CI]", "points"],
                                 [[t, s.text(), str(s.n)] for t, s in fits.items()]))
        report.data["alpha"] = {t: s.to_dict() for t, s in fits.items()}
        if math.isfinite(fits["pooled"].value):
            report.snippet = custom_rule_snippet(fits["pooled"])
            report.data["implied_g"] = 2 * fits["pooled"].value - 1
    else:
        report.notes.append("width exponent: not fitted, the steady-state cells cover fewer than 2 widths")
    halves = {w: s for w, s in half_exponent(qual).items() if math.isfinite(s.value)}
    if halves:
        report.tables.append(Tab("1/2-exponent check: beta in sigma_max ~ (lr/wd)^beta at a fixed width (paper: 0.5)",
                                 ["width", "beta [95% CI]", "points", "0.5 inside the interval"],
                                 [[str(w), s.text(), str(s.n),
                                   ("yes" if s.lo <= 0.5 <= s.hi else "no") if math.isfinite(s.se) else "–"]
                                  for w, s in halves.items()]))
        report.data["half_exponent"] = {str(w): s.to_dict() for w, s in halves.items()}
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
        rows = [[f"base ({eta0:.3g}, {wd0:.3g})", num(s0, ".3g"), "1", "1", "1", "", num(g0, ".3g"), "1",
                 num(ts[(eta0, wd0)], ".3g")]]
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
            rows.append([name, num(s, ".3g"), f"{ratio:.3f}", f"{expect:.3f}", paper,
                         f"{'pass' if ok else 'FAIL'} (±{tol:.0%})", num(g, ".3g"), f"{g / g0:.3f}",
                         num(ts[(eta, wd)], ".3g")])
            checks.append({"width": int(width), "cell": name, "eta": eta, "wd": wd, "sigma_max": s, "ratio": ratio,
                           "expected": expect, "tolerance": tol, "pass": bool(ok), "gain_ratio": g / g0})
        report.tables.append(Tab(
            f"Figure-1 check at d={width}: FFN sigma_max (gate, up, down; block-averaged) relative to base",
            ["cell", "sigma_max", "ratio", "sqrt(eta_f/wd_f)", "paper", "check", "gain", "gain ratio", "timescales"],
            rows))
    report.data["figure1"] = checks


def diagnose(run: Run, points: pd.DataFrame, optima: list[tuple[str, float, float]]) -> Report:
    """The report of ``points`` (``load_points``) at the transferred optima (``transferred``)."""
    report = Report()
    optimum_tables(points, optima, report)
    exponent_section(points, report)
    if run.spec.grid.pairs is not None:
        figure1_section(points, run.spec.grid.points(), report)
    report.data["run"] = str(run.root)
    return report


def run_diagnose(run_dir, console) -> Report:
    """The ``lwscale diagnose`` command: print the report, write diagnose.md/.json and figures."""
    import json

    from ..store import Store, _clean, _json_default, atomic_write_text
    from .results import load_run
    from .spectra import write_figures

    run = load_run(run_dir)
    root = run.root
    records = Store(root).records()  # read once for the report and the figures
    points = load_points(run, records)
    optima = transferred(points)
    report = diagnose(run, points, optima)
    for tab in report.tables:
        console.print(tab.rich())
    for n in report.notes:
        console.print(n, soft_wrap=True)
    if report.snippet:
        console.print("implied wd exponent as a rule for your spec:")
        console.print(report.snippet, markup=False, soft_wrap=True)
    figures = write_figures(root, points, records, run.spec.grid.pairs is not None, optima)
    report.data["figures"] = [str(p.relative_to(root)) for p in figures]
    atomic_write_text(root / "diagnose.md", report.markdown(f"lwscale diagnose: {root.name}")
                      + "\n" + "\n".join(f"![{p.stem}]({p.relative_to(root)})" for p in figures) + "\n")
    atomic_write_text(root / "diagnose.json", json.dumps(_clean(report.data), indent=1, default=_json_default))
    console.print(f"wrote {root / 'diagnose.md'}, {root / 'diagnose.json'} and {len(figures)} figures in "
                  f"{root / 'figures'}")
    return report

