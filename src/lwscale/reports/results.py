"""A run directory as reports see it: its spec, results.csv and the per-cell statistics.

Reports only read the store (docs/records.md). Optional columns written by later tools,
such as ``sigma_max`` from ``lwscale diagnose``, are used when present and never required.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..spec import Spec
from ..store import Store, find_run
from .tables import cell_stats, finished, rule_order


@dataclass
class Run:
    root: Path
    spec: Spec
    df: pd.DataFrame      # results.csv, one row per sweep point and seed
    stats: pd.DataFrame   # cell_stats over the grid's seeds: mean and se per (rule, width, eta, wd)

    @property
    def grid_seeds(self) -> list[int]:
        """The seeds the sweep's grid was trained on (the run's spec.yaml). Every grid cell has
        them, so every heatmap, table and argmin reads the same seed set; seeds that
        ``transfer --train`` adds to a few cells are kept out of ``stats``."""
        return [int(s) for s in self.spec.train.seeds]

    @property
    def widths(self) -> list[int]:
        return sorted(int(w) for w in self.df["width"].unique())

    @property
    def rules(self) -> list[str]:
        """Rule labels in the spec's order, then any others the table holds."""
        return rule_order(self.spec, self.df["rule"])

    def has_sigma(self) -> bool:
        return "sigma_max" in self.df and self.df["sigma_max"].notna().any()

    def curves(self, cell_id: str) -> list[list[float]]:
        """The validation curve [step, tokens, loss] of a cell ([] when it has no record)."""
        path = self.root / "cells" / str(cell_id) / "record.json"
        try:
            return json.loads(path.read_text()).get("curves", {}).get("val", []) or []
        except (OSError, ValueError):
            return []


def load_run(run_dir: str | Path | None) -> Run:
    """RUN_DIR, or the most recently modified run under ./runs, read for reporting."""
    root = find_run(run_dir)
    spec = Store(root).read_spec()
    path = root / "results.csv"
    if not path.exists():
        raise UserError(f"{root} has no results.csv yet; run `lwscale sweep` on its spec first")
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    missing = {"rule", "width", "eta", "wd", "seed", "status", "final_val_loss"} - set(df.columns)
    if missing:
        raise UserError(f"{path} lacks the columns {', '.join(sorted(missing))}; is it an lwscale results table?")
    if df.empty:
        raise UserError(f"{path} has no rows")
    df["final_val_loss"] = df["final_val_loss"].astype(float)
    return Run(root, spec, df, cell_stats(df[df["seed"].isin(spec.train.seeds)]))


def log2(x) -> np.ndarray | float:
    """log2 that maps 0 (no weight decay) to -inf without a warning."""
    with np.errstate(divide="ignore"):
        return np.log2(x)


def at_point(frame: pd.DataFrame, rule: str, width: int, eta: float, wd: float) -> pd.Series:
    """The rows of one sweep point (rule, width, eta, wd) of a results or stats frame: eta and
    wd match to 1e-9 relative (they went through text)."""
    return ((frame["rule"] == rule) & (frame["width"] == width)
            & np.isclose(frame["eta"], eta, rtol=1e-9, atol=0) & np.isclose(frame["wd"], wd, rtol=1e-9, atol=0))


def panel(stats: pd.DataFrame, rule: str, width: int) -> pd.DataFrame:
    """The rows of one (rule, width) of a results or stats frame: one heatmap panel."""
    return stats[(stats["rule"] == rule) & (stats["width"] == width)]


def seed_losses(frame: pd.DataFrame, rule: str, width: int, eta: float, wd: float) -> dict[int, float]:
    """Final validation loss of each finished seed of one sweep point of a results frame."""
    hit = frame[at_point(frame, rule, width, eta, wd) & finished(frame, "final_val_loss")]
    return {int(r.seed): float(r.final_val_loss) for r in hit.itertuples()}

