"""Figure-1 style figures from a run directory (matplotlib, Agg):

* ``diagnose-gain.png``: FFN sublayer gain (gate, up, down; block-averaged) against step;
* ``diagnose-spectra.png``: the FFN matrices' sorted singular values on log-log axes, each
  matrix's divided by its type's equilibrium scale S (diagnose_points.with_scales: sqrt(lr/2wd) in
  steady state at a constant lr, less under a decayed schedule), so that the curves collapse
  when the law holds;
* ``diagnose-sigma-width.png``: sigma_max against width, per rule, at each rule's
  transferred optimum.

The cells drawn: every (eta, wd) of the smallest width for a run of explicit pairs (the
Figure-1 config), otherwise each rule's transferred optimum at every width; first seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lwscale.model.config import matrix_type, user_types
from lwscale.reports.diagnose_points import FFN_TYPES, done_cells, rows_at
from lwscale.training.result import SPECTRA_FILE, load_spectra

FIGURES = ("diagnose-gain.png", "diagnose-spectra.png", "diagnose-sigma-width.png")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


FIGSIZE = (6.4, 4.2)  # one panel; `lwscale plot`'s figures are 3.8-5.5 wide per panel


def _finish(fig, ax, xlabel: str, ylabel: str, title: str, path: Path, name: str) -> None:
    """Labels, the run's name in the title and the file, as `lwscale plot` draws (reports/plots.py:
    titles at 10 and 9 points, legends at 7, grid, 110 dpi, tight bounding box)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.suptitle(f"{name}: {title}" if name else title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _plt().close(fig)


def chosen_cells(points: pd.DataFrame, pairs: bool, optima: list[tuple[str, float, float]]) -> pd.DataFrame:
    """One row per drawn cell (first seed; ``optima``: diagnose.transferred): see the module docstring."""
    done = done_cells(points)
    done = done[done["seed"] == done["seed"].min()] if not done.empty else done
    if pairs:
        sel = done[done["width"] == done["width"].min()]
    else:
        sel = pd.concat([rows_at(done, r, e, w) for r, e, w in optima]) if optima else done.iloc[:0]
    # rules share a physical cell where they agree (every rule at the base width): name them all
    rules = sel.groupby("cell_id")["rule"].agg(lambda r: "/".join(sorted(set(r))))
    return sel.drop_duplicates("cell_id").assign(rule=lambda d: d["cell_id"].map(rules))


def _label(r, pairs: bool) -> str:
    base = f"eta {r.eta:.3g}, wd {r.wd:.3g}"
    return base if pairs else f"{r.rule} d={r.width}"


def gain_figure(cells: pd.DataFrame, records: dict, pairs: bool, path: Path, name: str = "") -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for r in cells.itertuples():
        g = records[r.cell_id].diagnostics.get("gain") or {}
        curves = [g["by_type"][t] for t in FFN_TYPES if t in g.get("by_type", {})] or list(
            g.get("by_type", {}).values()
        )  # a user's model: every matrix type
        if curves:
            ax.plot(g["steps"], np.nanmean(np.array(curves, dtype=float), axis=0), marker=".", label=_label(r, pairs))
    _finish(
        fig,
        ax,
        "step",
        "FFN sublayer gain ||Wx||_rms / ||x||_rms",
        "gain on the fixed eval batch (gate, up, down; block mean)",
        path,
        name,
    )


def _types(names) -> dict[str, str]:
    """The matrix type of each spectrum's name, as the recorder named it (q ... down, or a
    user model's types)."""
    names = list(names)
    if all(matrix_type(n) is not None for n in names):
        return {n: matrix_type(n) for n in names}
    return user_types(names)


def spectra_figure(root: Path, cells: pd.DataFrame, points: pd.DataFrame, pairs: bool, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    scale = points.drop_duplicates(["cell_id", "type"]).set_index(["cell_id", "type"])["eq_scale"]
    for r in cells.itertuples():
        f = root / "cells" / r.cell_id / SPECTRA_FILE
        if not f.exists():
            continue
        spec = load_spectra(f)
        types = _types(spec)
        ffn = [n for n in spec if types[n] in FFN_TYPES] or list(spec)
        normed = [spec[n] / scale.get((r.cell_id, types[n]), math.nan) for n in ffn]
        normed = [s for s in normed if np.isfinite(s).all()]
        if not normed:
            continue
        n = min(len(s) for s in normed)
        ax.loglog(np.arange(1, n + 1), np.mean([s[:n] for s in normed], axis=0), label=_label(r, pairs))
    _finish(
        fig,
        ax,
        "index (sorted)",
        "singular value / S (equilibrium scale ~ sqrt(lr/2wd))",
        "FFN spectra at the end (block and type mean)",
        path,
        root.name,
    )


def sigma_width_figure(
    points: pd.DataFrame, optima: list[tuple[str, float, float]], path: Path, name: str = ""
) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    done = done_cells(points)
    for rule, eta, wd in optima:
        sub = rows_at(done, rule, eta, wd)
        s = sub.groupby("width")["sigma"].mean()  # mean over types and seeds
        ax.plot(s.index, s.values, marker="o", label=f"{rule} (eta {eta:.3g}, wd {wd:.3g})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter

    ax.yaxis.set_major_formatter(ScalarFormatter())  # plain numbers, not 1.4 x 10^0, on a narrow log range
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    _finish(
        fig,
        ax,
        "width d",
        "sigma_max (mean over matrix types)",
        "top singular value vs width at the transferred optimum",
        path,
        name,
    )


def write_figures(
    root: Path, points: pd.DataFrame, records: dict, pairs: bool, optima: list[tuple[str, float, float]]
) -> list[Path]:
    out = root / "figures"
    out.mkdir(exist_ok=True)
    cells = chosen_cells(points, pairs, optima)
    paths = [out / name for name in FIGURES]
    gain_figure(cells, records, pairs, paths[0], root.name)
    spectra_figure(root, cells, points, pairs, paths[1])
    sigma_width_figure(points, optima, paths[2], root.name)
    return paths
