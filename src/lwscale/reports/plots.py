"""Figures of a run (matplotlib, Agg): heatmaps, slices, the transfer comparison, curves, and
for a run of several widths or lengths the optimal weight decay against both (``optima``).

Every figure is drawn from results.csv (and the cell records for curves), written to
RUN_DIR/figures/<name>.png, and also as PDF on request. Measured cells are drawn as cells:
no contours are interpolated between them.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as pe  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

from lwscale.core.errors import UserError  # noqa: E402
from lwscale.data.floor import floor_note, loss_floor  # noqa: E402
from lwscale.reports.horizon import best_fit, fit_all
from lwscale.reports.report import evaluation_seeds
from lwscale.reports.ridge import MIN_POINTS, Ridge, fit_ridge  # noqa: E402
from lwscale.reports.run import Run, at_point, log2, panel  # noqa: E402
from lwscale.reports.tables import argmin, finished  # noqa: E402
from lwscale.reports.transfer import check_width, transfer
from lwscale.reports.transfer_tables import ends, seeds_text
from lwscale.science.rules import get_rule

CMAP = "viridis_r"  # low loss = bright
CLIP = (0.02, 0.65)  # colour-scale quantiles of the finished losses
BAD = {
    "diverged": dict(facecolor="0.75", hatch="///", edgecolor="0.35"),
    "failed": dict(facecolor="white", hatch="xx", edgecolor="0.45"),
    "missing": dict(facecolor="white", hatch="..", edgecolor="0.6"),
}
BAD_LABEL = {"diverged": "diverged", "failed": "failed", "missing": "not trained yet"}


def _save(fig, out: Path, name: str, pdf: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    if pdf:
        paths.append(out / f"{name}.pdf")
        fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _edges(v: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres (half-way between neighbours; one unit for a single value)."""
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])


def _ylog(wd: np.ndarray) -> np.ndarray:
    """log2 lambda, with wd = 0 drawn one step below the smallest positive wd."""
    pos = wd[wd > 0]
    floor = log2(pos.min()) - 1 if len(pos) else 0.0
    return np.where(wd > 0, log2(np.where(wd > 0, wd, 1.0)), floor)


def colour_norm(stats: pd.DataFrame, relative: bool = False) -> Normalize:
    """One colour scale for every panel, clipped to the CLIP quantiles of the finished losses:
    the poor cells (often a third of a grid) saturate, so the near-optimal ones stay apart.
    ``relative``: the scale of each cell's loss above its panel's best cell, from 0."""
    done = stats[finished(stats)]
    if done.empty:
        return Normalize(0, 1)
    ok = done["loss"].to_numpy(float)
    if relative:
        keys = ["rule", "width", "steps"] if "steps" in done else ["rule", "width"]
        ok = ok - done.groupby(keys)["loss"].transform("min").to_numpy(float)
    lo, hi = (0.0 if relative else np.quantile(ok, CLIP[0])), np.quantile(ok, CLIP[1])
    if hi - lo < 1e-9:
        lo, hi = (lo, lo + 0.1) if relative else (lo - 0.05, hi + 0.05)
    return Normalize(lo, hi, clip=False)


def _value_labels(values) -> list[str]:
    """One axis's tick labels: 2^-7 when every value on it is a power of two, else the values
    (0 for no weight decay), so that one axis never mixes 2^0 with 3 and 10."""
    pos = [v for v in values if v > 0]
    powers = all(abs(math.log2(v) - round(math.log2(v))) < 1e-9 for v in pos)
    return ["0" if v <= 0 else f"$2^{{{int(round(math.log2(v)))}}}$" if powers else f"{v:.3g}" for v in values]


def _fmt_ticks(ax, xs, ys, etas, wds):
    ax.set_xticks(xs)
    ax.set_xticklabels(_value_labels(etas), fontsize=8)
    ax.set_yticks(ys)
    ax.set_yticklabels(_value_labels(wds), fontsize=8)


_HALO = [pe.withStroke(linewidth=2.6, foreground="black")]
_HALO_WHITE = [pe.withStroke(linewidth=3.0, foreground="white")]


class GridAxes:
    """The run's (eta, wd) grid in plot coordinates: log2 eta, log2 lambda (wd = 0 one step below)."""

    def __init__(self, stats: pd.DataFrame):
        self.etas = np.array(sorted(stats["eta"].unique()), float)
        self.wds = np.array(sorted(stats["wd"].unique()), float)
        self.xs, self.ys = log2(self.etas), _ylog(self.wds)
        self.xe, self.ye = _edges(self.xs), _edges(self.ys)

    def index(self, eta: float, wd: float) -> tuple[int, int] | None:
        j, i = np.flatnonzero(np.isclose(self.etas, eta)), np.flatnonzero(np.isclose(self.wds, wd))
        return (int(i[0]), int(j[0])) if len(i) and len(j) else None

    def coord(self, axis: str, values) -> np.ndarray:
        """Plot coordinates of eta ("eta") or wd ("wd") values on this grid."""
        grid, pos = (self.etas, self.xs) if axis == "eta" else (self.wds, self.ys)
        idx = np.abs(np.asarray(values, float)[:, None] - grid[None, :]).argmin(axis=1)
        return pos[idx]

    def cell(self, i: int, j: int, **kw) -> Rectangle:
        xe, ye = self.xe, self.ye
        return Rectangle((xe[j], ye[i]), xe[j + 1] - xe[j], ye[i + 1] - ye[i], **kw)


def heatmap_panel(
    ax,
    sub: pd.DataFrame,
    g: GridAxes,
    norm: Normalize,
    proxy: tuple[float, float] | None,
    annotate: bool,
    offset: float = 0.0,
    seeds: pd.DataFrame | None = None,
    guides: bool = True,
):
    """One (rule, width) panel, coloured by loss - ``offset``; returns the set of bad statuses
    it drew and the ridge's note. ``seeds``: the panel's results rows (one per seed), for the
    ridge's seed bootstrap. ``guides``: the iso-eta*lambda and iso-eta/lambda lines through the
    best cell (left out where the grid is too small for a ridge to be read)."""
    Z = np.full((len(g.wds), len(g.etas)), np.nan)
    seen = np.zeros(Z.shape, bool)
    bad = set()
    for r, ok in zip(sub.itertuples(), finished(sub)):
        i, j = g.index(r.eta, r.wd)
        seen[i, j] = True
        if ok:
            Z[i, j] = r.loss - offset
        else:
            kind = r.status if r.status in ("diverged", "failed") else "missing"
            bad.add(kind)
            ax.add_patch(g.cell(i, j, lw=0, **BAD[kind]))
        if annotate and ok:
            rgba = plt.get_cmap(CMAP)(norm(r.loss - offset))
            dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
            ax.text(
                g.xs[j],
                g.ys[i] - 0.28 * (g.ye[i + 1] - g.ye[i]),
                f"{r.loss:.3f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
    for i, j in zip(*np.nonzero(~seen)):  # grid points this panel has no row for
        bad.add("missing")
        ax.add_patch(g.cell(i, j, lw=0, **BAD["missing"]))
    ax.pcolormesh(g.xe, g.ye, np.ma.masked_invalid(Z), cmap=CMAP, norm=norm, shading="flat")
    ax.set_xlim(g.xe[0], g.xe[-1])
    ax.set_ylim(g.ye[0], g.ye[-1])
    _fmt_ticks(ax, g.xs, g.ys, g.etas, g.wds)
    best = argmin(sub)
    if best is not None:
        i, j = g.index(best["eta"], best["wd"])
        bx, by = g.xs[j], g.ys[i]
        # the star sits in the cell's upper half, clear of the loss printed in its lower half
        ax.plot(bx, by + 0.2 * (g.ye[i + 1] - g.ye[i]), marker="*", ms=14, mfc="gold", mec="black", ls="none", zorder=5)
        if guides:  # through the best cell: iso-eta*lambda (slope -1) and iso-eta/lambda (slope +1)
            t = np.array([g.xe[0], g.xe[-1]])
            ax.plot(t, by - (t - bx), ls="--", color="white", lw=1.2, zorder=3, path_effects=_HALO)
            ax.plot(t, by + (t - bx), ls=":", color="white", lw=1.4, zorder=3, path_effects=_HALO)
    if proxy is not None:  # outline the proxy optimum's cell (or mark it off-grid)
        hit = g.index(*proxy)
        if hit is not None:
            ax.add_patch(g.cell(*hit, fill=False, ec="red", lw=2.8, zorder=6))
        else:
            py = float(log2(proxy[1])) if proxy[1] > 0 else g.ys[0]
            ax.plot(float(log2(proxy[0])), py, marker="s", ms=12, mfc="none", mec="red", mew=2.2, zorder=6)
    ridge = draw_ridge(ax, g, sub, seeds)
    return bad, ridge.short().replace("\n", " ")


def draw_ridge(ax, g: GridAxes, sub: pd.DataFrame, seeds: pd.DataFrame | None = None) -> Ridge:
    """Fit the panel's ridge and draw it: the valley's axis as a red line through the fitted
    vertex (clipped to the panel), each lambda row's best eta as red dots (also when no ridge
    is fitted: they are measured). Returns the fit."""
    if seeds is not None:
        seeds = seeds.assign(loss=seeds["final_val_loss"].where(finished(seeds, "final_val_loss")))
    ridge = fit_ridge(sub.assign(loss=sub["loss"].where(finished(sub))), seeds)
    if ridge.ok:
        (cx, cy), (dx, dy) = ridge.vertex, ridge.direction
        reach = math.hypot(g.xe[-1] - g.xe[0], g.ye[-1] - g.ye[0]) + math.hypot(cx - g.xs.mean(), cy - g.ys.mean())
        t = np.array([-reach, reach])
        ax.plot(cx + t * dx, cy + t * dy, color="red", lw=1.8, zorder=4, path_effects=_HALO_WHITE, gid="ridge")
    if ridge.points:
        ax.plot(*np.array(ridge.points).T, "o", ms=4, mfc="red", mec="white", mew=0.6, zorder=4, gid="row-minima")
    return ridge


def on_spec_grid(run: Run) -> pd.DataFrame:
    """The stats of the spec's grid points only (``transfer --train`` may add others)."""
    grid = run.spec.grid
    if grid.pairs is not None:
        return run.stats
    near = lambda col, values: np.isclose(run.stats[col].to_numpy(float)[:, None], values).any(axis=1)  # noqa: E731
    return run.stats[near("eta", grid.axis("eta")) & near("wd", grid.axis("wd"))]


def heatmaps(
    run: Run,
    out: Path,
    proxy_width: int | None = None,
    pdf: bool = False,
    relative: bool = True,
    proxy_steps: int | None = None,
) -> list[Path]:
    """One panel per (width, steps) and one row per rule. ``relative`` colours each cell by its
    loss above its panel's best (one scale for all panels): every panel's valley shows even
    when the widths' losses do not overlap. The proxy is (``proxy_width``, ``proxy_steps``;
    default the smallest width at its base horizon); its optimum is outlined on the others."""
    stats, rules, widths = on_spec_grid(run), run.rules, run.widths
    panels = run.panels()
    norm = colour_norm(stats, relative)
    proxy_width = widths[0] if proxy_width is None else proxy_width
    proxy_steps = run.default_steps(proxy_width) if proxy_steps is None else proxy_steps
    g = GridAxes(stats)
    annotate = len(g.etas) * len(g.wds) <= 64
    guides = min(len(g.etas), len(g.wds)) >= MIN_POINTS  # too small a grid to read a direction from
    fig, axes = plt.subplots(
        len(rules),
        len(panels),
        figsize=(4.0 * len(panels) + 1.2, 3.5 * len(rules) + 1.4),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    bad, any_ridge, any_rows, titles = set(), False, False, []
    for i, rule in enumerate(rules):
        best_p = argmin(panel(stats, rule, proxy_width, proxy_steps))
        proxy = None if best_p is None else (float(best_p["eta"]), float(best_p["wd"]))
        for j, (width, steps) in enumerate(panels):
            ax = axes[i, j]
            sub = panel(stats, rule, width, steps)
            if sub.empty:
                ax.set_axis_off()
                continue
            done = sub.loc[finished(sub), "loss"]
            offset = float(done.min()) if relative and not done.empty else 0.0
            is_proxy = (width, steps) == (proxy_width, proxy_steps)
            drawn, ridge_note = heatmap_panel(
                ax,
                sub,
                g,
                norm,
                None if is_proxy else proxy,
                annotate,
                offset,
                panel(run.df[run.df["seed"].isin(run.grid_seeds)], rule, width, steps),
                guides,
            )
            bad |= drawn
            any_ridge |= not ridge_note.startswith("no ridge")
            any_rows |= any(ln.get_gid() == "row-minima" for ln in ax.lines)
            length = f", S={steps:,}" if run.multi_horizon else ""
            titles.append((ax, f"{rule}, width {width} (m={width / run.spec.model.d0:g}{length})", ridge_note))
            if i == len(rules) - 1:
                ax.set_xlabel("η  (base lr, log₂ axis)")
            if j == 0:
                ax.set_ylabel("λ  (base wd, log₂ axis)")
    # a note every panel shares ("no ridge: 3 eta x 3 lambda values, ...") is said once, above them all
    notes = {note for _, _, note in titles}
    shared = notes.pop() if len(notes) == 1 and len(titles) > 1 else None
    for ax, title, note in titles:
        ax.set_title(title if shared else f"{title}\n{note}", fontsize=9)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=CMAP)
    cb = fig.colorbar(sm, ax=axes, shrink=0.9, extend="both")
    cb.set_label(
        "loss above the panel's best cell (nats/token)"
        if relative
        else "final validation loss (nats/token, mean over seeds)"
    )
    handles = [
        plt.Line2D([], [], marker="*", ms=12, mfc="gold", mec="black", ls="none", label="best cell"),
        Patch(
            fill=False,
            ec="red",
            lw=2.5,
            label=f"proxy optimum ({run.where(proxy_width, proxy_steps)}) on the other panels",
        ),
    ]
    if guides:
        handles += [
            plt.Line2D([], [], ls="--", color="0.3", label="iso ηλ through the best cell"),
            plt.Line2D([], [], ls=":", color="0.3", lw=1.5, label="iso η/λ through the best cell"),
        ]
    if any_ridge:
        handles.append(
            plt.Line2D(
                [],
                [],
                color="red",
                lw=1.8,
                label="ridge η ∝ λ^s: the valley's axis, from a quadratic fit around the best cell",
            )
        )
    if any_rows:
        handles.append(
            plt.Line2D([], [], ls="none", marker="o", ms=4, mfc="red", mec="white", label="each λ row's best η")
        )
    handles += [Patch(label=BAD_LABEL[k], **BAD[k]) for k in ("diverged", "failed", "missing") if k in bad]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 3 if len(panels) < 3 else 4),
        fontsize=8,
        frameon=False,
    )
    colours = (
        f"colours: loss above each panel's best cell, one scale, clipped at its {CLIP[1]:.0%} quantile"
        if relative
        else f"colours shared by all panels, clipped to the {CLIP[0]:.0%}–{CLIP[1]:.0%} quantiles of the finished cells"
    )
    fig.suptitle(
        f"{run.spec.name}: final validation loss over base (η, λ), mean over the grid's "
        f"{seeds_text(run.grid_seeds)}\n{colours} (numbers: the loss)"
        + (f"\n{shared}" if shared else "")
        + (f"\n{floor_note(run.spec.data)}" if floor_note(run.spec.data) else ""),
        fontsize=10,
    )
    return _save(fig, out, "heatmaps", pdf)


def _widths_colours(widths):
    cm = plt.get_cmap("plasma")
    return {w: cm(0.1 + 0.75 * i / max(len(widths) - 1, 1)) for i, w in enumerate(widths)}


_HORIZON_STYLES = ("-", "--", ":", "-.")


def slices(run: Run, out: Path, pdf: bool = False) -> list[Path]:
    """Loss against eta at each panel's best lambda, and against lambda at its best eta: one
    line per width (colour) and, in a run of several lengths, per horizon (line style). In
    base coordinates, so under a rule that transfers the minima line up, across widths and,
    with a good horizon exponent h, across lengths."""
    stats, rules, widths = run.stats, run.rules, run.widths
    colours = _widths_colours(widths)
    styles = {s: _HORIZON_STYLES[k % len(_HORIZON_STYLES)] for k, s in enumerate(run.horizons)}
    g = GridAxes(stats)
    fig, axes = plt.subplots(len(rules), 2, figsize=(10, 3.3 * len(rules) + 0.6), squeeze=False)
    for i, rule in enumerate(rules):
        for j, (along, fixed, name) in enumerate((("eta", "wd", "η"), ("wd", "eta", "λ"))):
            ax = axes[i, j]
            drawn = False
            for w, steps in run.panels():
                sub = panel(stats, rule, w, steps)
                best = argmin(sub)
                if best is None:
                    continue
                line = sub[np.isclose(sub[fixed], best[fixed])].sort_values(along)
                line = line[finished(line)]
                x = g.coord(along, line[along])
                se = line["se"].where(line["n"] > 1).to_numpy(float)
                fixed_txt = f"{'λ' if fixed == 'wd' else 'η'}={best[fixed]:.3g}"
                ax.errorbar(
                    x,
                    line["loss"],
                    yerr=None if np.all(np.isnan(se)) else se,
                    marker="o",
                    ms=4,
                    color=colours[w],
                    capsize=3,
                    ls=styles[steps] if run.multi_horizon else "-",
                    label=f"{run.where(w, steps)} ({fixed_txt})",
                )
                bx = g.coord(along, [best[along]])[0]
                ax.plot(bx, best["loss"], marker="*", ms=13, color=colours[w], mec="black", zorder=5)
                drawn = True
            ticks, values = (g.xs, g.etas) if along == "eta" else (g.ys, g.wds)
            ax.set_xticks(ticks, _value_labels(values), fontsize=8)
            ax.set_xlabel(f"{name}  (base {'lr' if along == 'eta' else 'wd'}, log₂ axis)")
            ax.set_ylabel("final validation loss")
            other = "λ" if along == "eta" else "η"
            each = "each (width, length)'s" if run.multi_horizon else "each width's"
            ax.set_title(f"{rule}: loss vs {name} at {each} best {other}", fontsize=10)
            if drawn:
                ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    fig.suptitle(
        f"{run.spec.name}: slices through each "
        + ("panel" if run.multi_horizon else "width")
        + "'s optimum (★): under a "
        "good rule the minima line up"
        + (" (line style: training length)" if run.multi_horizon else "")
        + "; error bars = seed standard error",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, out, "slices", pdf)


def _bars(ax, entries: list[dict], series, width: float, tie_keys: dict | None = None) -> None:
    """Grouped bars, one group per rule: (offset, key, label, colour) per series, seed
    standard errors as error bars, and each value written on its bar ("n/a" when unmeasured)."""
    x = np.arange(len(entries))
    for off, key, lab, col in series:
        vals = np.array([np.nan if e.get(key) is None else e[key] for e in entries], float)
        errs = np.array([np.nan if e.get(key + "_se") is None else e[key + "_se"] for e in entries], float)
        ax.bar(
            x + off,
            np.nan_to_num(vals),
            width,
            yerr=None if np.all(np.isnan(errs)) else np.nan_to_num(errs),
            capsize=3,
            ecolor="black",
            color=col,
            label=lab,
        )
        for xi, v, err, e in zip(x + off, vals, np.nan_to_num(errs), entries):
            tie = (tie_keys or {}).get(key)
            txt = "n/a" if np.isnan(v) else f"{v:+.3g}" + (" tie" if tie and e.get(tie) else "")
            top = 0 if np.isnan(v) else v + (err if v >= 0 else -err)  # above the error bar
            ax.annotate(
                txt,
                (xi, top),
                ha="center",
                va="bottom" if not v < 0 else "top",
                fontsize=7,
                xytext=(0, 3 if not v < 0 else -3),
                textcoords="offset points",
            )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [e["rule"] for e in entries])
    ax.margins(y=0.15)
    # under the axes: inside, it covered the tallest bar's value
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)


def grid_steps(run: Run) -> tuple[float, float] | None:
    """The grid's spacing in log2 eta and log2 lambda (the smallest step between values), or None
    for explicit pairs: a shift of the optimum moves in these steps."""
    if run.spec.grid.pairs is not None:
        return None
    etas, wds = run.spec.grid.axis("eta"), [w for w in run.spec.grid.axis("wd") if w > 0]
    step = lambda v: float(np.min(np.diff(np.log2(sorted(set(v)))))) if len(set(v)) > 1 else math.nan
    return step(etas), step(wds)


def transfer_comparison(
    result: dict, out: Path, pdf: bool = False, steps: tuple[float, float] | None = None, name: str = ""
) -> list[Path]:
    """Per rule: regret (pooled and own), and the shift of the optimum, with seed error bars.
    ``steps`` (grid_steps) draws one grid step either side of 0 on the shift panel, so that
    an error bar (seed noise) is not read as the grid's spacing, nor the spacing as noise."""
    entries = result["rules"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    _bars(
        axes[0],
        entries,
        (
            (-0.18, "regret_pooled", "vs the best target cell of any rule", "tab:red"),
            (0.18, "regret_rule", "vs the rule's own best target cell", "tab:gray"),
        ),
        0.36,
        {"regret_pooled": "tie_pooled", "regret_rule": "tie_rule"},
    )
    axes[0].set_ylabel("regret (Δ final validation loss)")
    ev = result.get("evaluation") or {}
    read = (
        ""
        if not ev
        else (
            f"\non the fresh {seeds_text(ev['seeds'])}"
            if ev["fresh"]
            else f"\non the grid's {seeds_text(ev['seeds'])}, which picked the optima (biased high)"
        )
    )
    axes[0].set_title(
        "regret at the transferred point (lower is better;\n"
        f"n/a: that target cell was not trained; tie: within 2 paired s.e.){read}",
        fontsize=9,
    )
    _bars(
        axes[1],
        entries,
        (
            (-0.27, "d_log2_eta", "Δlog₂ η", "tab:blue"),
            (-0.09, "d_log2_wd", "Δlog₂ λ", "tab:orange"),
            (0.09, "d_log2_eta_x_wd", "Δlog₂ ηλ (across an iso-ηλ ridge)", "tab:purple"),
            (0.27, "d_log2_eta_over_wd", "Δlog₂ η/λ (along it)", "tab:green"),
        ),
        0.18,
    )
    axes[1].set_ylabel("target optimum − proxy optimum (log₂ units)")
    grid_note = ""
    if steps is not None and all(math.isfinite(s) for s in steps):
        for s, col in zip(steps, ("tab:blue", "tab:orange")):
            for y in (-s, s):
                axes[1].axhline(y, color=col, lw=0.8, ls=":", alpha=0.8)
        grid_note = (
            f"\ndotted: one grid step (log₂ η {steps[0]:.3g}, log₂ λ {steps[1]:.3g}); a shift moves in these steps"
            if steps[0] != steps[1]
            else f"\ndotted: ± one grid step ({steps[0]:.3g} in log₂ η and λ); a shift moves in these steps"
        )
    axes[1].set_title(f"shift of the grid optimum from proxy to target (0 = perfect transfer){grid_note}", fontsize=9)
    fig.suptitle(
        f"{name + ': ' if name else ''}transfer from {ends(result)[2].replace('->', 'to')} "
        "(black error bars: seed standard error; none with one seed)",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, out, "transfer", pdf)


def curves(run: Run, out: Path, pdf: bool = False, per_panel: int = 4) -> list[Path]:
    """Validation loss against tokens for the best few cells (those on the ridge) of each panel."""
    rules, panels = run.rules, run.panels()
    fig, axes = plt.subplots(
        len(rules), len(panels), figsize=(3.8 * len(panels), 3.0 * len(rules) + 0.5), squeeze=False, sharey=True
    )
    df = run.df[run.df["seed"].isin(run.grid_seeds)]  # the grid's seeds, as the heatmaps' means
    lo, hi = math.inf, -math.inf  # y range of the curves after step 0 (the initial loss is far above)
    starts = []  # (axes, step-0 loss): drawn on the frame's top edge, with its value
    for i, rule in enumerate(rules):
        for j, (w, steps) in enumerate(panels):
            ax = axes[i, j]
            sub = panel(run.stats, rule, w, steps)
            near = sub[finished(sub)].nsmallest(per_panel, "loss")
            for k, r in enumerate(near.itertuples()):
                rows = df[at_point(df, rule, w, r.eta, r.wd, steps)]
                for s, cid in enumerate(rows["cell_id"].dropna()):
                    c = np.array(run.curves(cid), float)
                    if c.ndim != 2 or len(c) == 0:
                        continue
                    ax.plot(
                        c[:, 1],
                        c[:, 2],
                        marker=".",
                        color=f"C{k}",
                        alpha=1 if s == 0 else 0.5,
                        label=f"η={r.eta:.3g}, λ={r.wd:.3g}: {r.loss:.3f}" if s == 0 else None,
                    )
                    later = c[c[:, 0] > 0, 2]
                    if len(later):
                        lo, hi = min(lo, later.min()), max(hi, later.max())
                    if c[0, 0] == 0 and s == 0 and k == 0:
                        starts.append((ax, float(c[0, 2])))
            ax.set_title(f"{rule}, {run.where(w, steps)}", fontsize=10)
            ax.set_xlabel("training tokens")
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 1.5M, not 1500000 or 1.5e6
            if j == 0:
                ax.set_ylabel("validation loss")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, title="base (η, λ): final loss", title_fontsize=7)
    floor = loss_floor(run.spec.data)
    if floor is not None and math.isfinite(lo):
        lo = min(lo, floor)  # the floor in the frame: the curves' distance above it is the point
        for ax in axes.flat:
            ax.axhline(floor, color="0.3", lw=1, ls="--", label="loss floor (teacher entropy)")
    if math.isfinite(lo):
        pad = 0.15 * (hi - lo) + 0.01
        axes[0, 0].set_ylim(lo - pad, hi + pad)  # shared y: the step-0 loss is far above the curves
        top = hi + pad
        for ax, y0 in starts:  # so step 0 is marked on the top edge, with its value
            if y0 > top:
                ax.plot([0], [top], marker="^", color="0.3", ms=7, clip_on=False, zorder=6)
                ax.annotate(
                    f"step 0: {y0:.2f}", (0, top), xytext=(6, -10), textcoords="offset points", fontsize=7, color="0.3"
                )
    fig.suptitle(
        f"{run.spec.name}: validation curves of the {per_panel} best cells of each panel (one line per seed; "
        "▲ the step-0 loss, far above the curves"
        + ("; dashed: the loss floor, the teacher's entropy)" if floor is not None else ")"),
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, out, "curves", pdf)


def _rule_colours(rules) -> dict:
    return {r: f"C{i % 10}" for i, r in enumerate(rules)}


def optima_figure(
    run: Run, out: Path, pdf: bool = False, proxy_width: int | None = None, proxy_steps: int | None = None
) -> list[Path]:
    """The loss-optimal weight decay against training length (left) and width (right), log
    axes: each rule's measured optimum of every (width, steps) panel as the physical coupled
    matrix wd it trained with (``horizon.optima``; hollow when on the grid's lambda edge), and
    each rule's prediction from its own proxy optimum, lambda_p m^g (S/S_p)^-h, as a line in
    the rule's colour: a rule that transfers has its line through its points. The black
    dashed line is the fit of lambda* ~ m^g S^-h of the best-placed rule's grid (diagnose)."""
    widths, horizons = run.widths, run.horizons
    proxy_width = widths[0] if proxy_width is None else proxy_width
    proxy_steps = run.default_steps(proxy_width) if proxy_steps is None else proxy_steps
    fits = fit_all(run)
    colours = _rule_colours(run.rules)
    markers = dict(zip(widths, "osD^vP*X"))
    hmark = dict(zip(horizons, "osD^vP*X"))
    styles = {s: _HORIZON_STYLES[k % len(_HORIZON_STYLES)] for k, s in enumerate(horizons)}
    wstyles = {w: _HORIZON_STYLES[k % len(_HORIZON_STYLES)] for k, w in enumerate(widths)}
    d0 = run.spec.model.d0
    fig, (ax_s, ax_w) = plt.subplots(1, 2, figsize=(11.5, 4.6))
    for i, f in enumerate(fits):
        r, c = get_rule(f.rule), colours[f.rule]
        anchor = next((o for o in f.optima if (o.width, o.steps) == (proxy_width, proxy_steps)), None)
        nudge = 2 ** (0.05 * (i - (len(fits) - 1) / 2))  # rules that find the same optimum stay visible side by side
        for o in f.optima:
            kw = dict(color=c, mfc="none" if o.on_edge else c, mec=c, ls="none", ms=6, alpha=0.9)
            ax_s.plot(o.steps * nudge, o.wd_phys, marker=markers[o.width], **kw)
            ax_w.plot(o.width * nudge, o.wd_phys, marker=hmark[o.steps], **kw)
        if anchor is None:
            continue
        m_p = anchor.width / d0 if r.mup else 1.0

        def predict(width, steps):
            m = width / d0 if r.mup else 1.0
            rho = run.spec.horizon_ratio(width, steps)
            return anchor.wd_phys * (m / m_p) ** r.g * (rho / anchor.rho) ** -r.h

        s_axis = np.geomspace(min(horizons), max(horizons), 30)
        for w in widths:
            if run.steps_at(w):
                ax_s.plot(
                    s_axis,
                    [
                        predict(w, run.spec.steps_at(w, run.spec.base_horizon()) * x / run.spec.base_horizon())
                        for x in s_axis
                    ],
                    color=c,
                    lw=1.2,
                    ls=wstyles[w],
                    alpha=0.8,
                )
        w_axis = np.geomspace(min(widths), max(widths), 30)
        for st in horizons:
            ax_w.plot(w_axis, [predict(w, st) for w in w_axis], color=c, lw=1.2, ls=styles[st], alpha=0.8)
    best = best_fit(fits)
    if best is not None and best.optima:
        g = best.g.value if math.isfinite(best.g.value) else 0.0
        h = best.h.value if math.isfinite(best.h.value) else 0.0
        ys = [math.log2(o.wd_phys) - g * math.log2(o.m) + h * math.log2(o.rho) for o in best.optima]
        ref = float(np.mean(ys))
        s_axis = np.geomspace(min(horizons), max(horizons), 30)
        base = run.spec.base_horizon()
        ax_s.plot(
            s_axis,
            [2 ** (ref - h * math.log2(x / base) + g * math.log2(proxy_width / d0)) for x in s_axis],
            color="black",
            ls="--",
            lw=1.4,
        )
        w_axis = np.geomspace(min(widths), max(widths), 30)
        ax_w.plot(
            w_axis,
            [2 ** (ref + g * math.log2(w / d0) - h * math.log2(proxy_steps / base)) for w in w_axis],
            color="black",
            ls="--",
            lw=1.4,
        )
    for ax, xlab in ((ax_s, "training steps S (log axis)"), (ax_w, "width d (log axis)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel(xlab)
        ax.set_ylabel("optimal λ: matrix wd, coupled (log axis)")
        ax.grid(alpha=0.3, which="both")
    ax_s.set_title("against training length: one marker shape (and line style) per width", fontsize=9)
    ax_w.set_title("against width: one marker shape (and line style) per length", fontsize=9)
    ax_s.legend(
        handles=[plt.Line2D([], [], color="0.4", marker=markers[w], ls=wstyles[w], label=f"width {w}") for w in widths],
        fontsize=7,
        loc="best",
    )
    ax_w.legend(
        handles=[
            plt.Line2D([], [], color="0.4", marker=hmark[st], ls=styles[st], label=f"{st:,} steps") for st in horizons
        ],
        fontsize=7,
        loc="best",
    )
    handles = [
        plt.Line2D(
            [],
            [],
            color=colours[f.rule],
            marker="o",
            label=f"{f.rule}: its optima, and its prediction from its proxy optimum",
        )
        for f in fits
    ]
    if best is not None:
        handles.append(
            plt.Line2D(
                [],
                [],
                color="black",
                ls="--",
                label=f"fit on {best.rule}'s grid: λ* ∝ m^g S^-h, g = {best.g.text()}, h = {best.h.text()}",
            )
        )
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=7, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(
        f"{run.spec.name}: the loss-optimal weight decay across training lengths and widths "
        f"(hollow: on the grid's λ edge; lines anchored at {run.where(proxy_width, proxy_steps)})",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06 + 0.03 * ((len(handles) + 1) // 2), 1, 1))
    return _save(fig, out, "optima", pdf)


def _warn(msg: str) -> None:
    warnings.warn(msg, stacklevel=3)


def plot_all(
    run: Run,
    proxy: int | None = None,
    target: int | None = None,
    pdf: bool = False,
    transfer_result: dict | None = None,
    warn=_warn,
    relative: bool = True,
) -> list[Path]:
    """Every figure of the run into RUN_DIR/figures. A ``proxy`` or ``target`` width the run
    lacks is a user error, raised before anything is drawn. The transfer figure needs two
    widths; when the transfer cannot be computed (no finished proxy cells, say) the other
    figures still stand and ``warn`` (default: a Python warning) gets one line saying why."""
    for w, what in ((proxy, "proxy"), (target, "target")):
        if w is not None:
            check_width(run, w, what)
    out = run.root / "figures"
    paths = heatmaps(run, out, proxy, pdf, relative) + slices(run, out, pdf) + curves(run, out, pdf)
    if run.multi_horizon and run.spec.grid.pairs is None:
        paths += optima_figure(run, out, pdf, proxy)
    widths = run.widths
    if transfer_result is None and len(widths) > 1:
        try:
            p, t = proxy or widths[0], target or widths[-1]
            transfer_result = transfer(run, p, t, eval_seeds=evaluation_seeds(run, p, t))
        except UserError as exc:  # e.g. no finished proxy cells: the other figures still stand
            warn(f"no transfer figure: {exc}")
    if transfer_result is not None:
        paths += transfer_comparison(transfer_result, out, pdf, grid_steps(run), run.spec.name)
    return paths
