"""A run directory as reports see it: its spec, results.csv and the per-cell statistics.

Reports only read the store (docs/records.md). Optional columns written by later tools,
such as ``sigma_max`` from ``lwscale diagnose``, are used when present and never required.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lwscale.core.errors import UserError
from lwscale.reports.tables import cell_stats, finished, rule_order
from lwscale.rundir.store import Store, find_run
from lwscale.sweep.spec import Spec


@dataclass
class Run:
    root: Path
    spec: Spec
    df: pd.DataFrame  # results.csv, one row per sweep point and seed
    stats: pd.DataFrame  # cell_stats over the grid's seeds: mean and se per (rule, width, steps, eta, wd)
    classes: dict | None = None  # the parameter classes plan.json recorded (Store.read_classes)

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
    def horizons(self) -> list[int]:
        """Every training length (``steps``) the table holds, over all widths."""
        return sorted(int(s) for s in self.df["steps"].unique())

    def steps_at(self, width: int) -> list[int]:
        """The training lengths ``width`` has rows at, shortest first."""
        return sorted(int(s) for s in self.df.loc[self.df["width"] == width, "steps"].unique())

    @property
    def multi_horizon(self) -> bool:
        """Whether the run trains several lengths (its spec's ``train.steps`` is a list): then
        every table and figure names each panel's steps."""
        return self.spec.multi_horizon or any(len(self.steps_at(w)) > 1 for w in self.widths)

    def panels(self) -> list[tuple[int, int]]:
        """(width, steps) of every panel the table has rows for: one per width for one horizon."""
        pairs = self.df[["width", "steps"]].drop_duplicates().itertuples(index=False)
        return sorted((int(w), int(s)) for w, s in pairs)

    def where(self, width: int, steps: int | None = None) -> str:
        """ "width 64", or "width 64, 800 steps" in a run of several horizons."""
        return f"width {width}" + (f", {steps:,} steps" if steps is not None and self.multi_horizon else "")

    def default_steps(self, width: int, longest: bool = False) -> int | None:
        """The horizon reports use at ``width`` when none is named: its only one; with several,
        the base horizon where the width has it (else its shortest), or with ``longest`` its
        longest (a target's). None when the width has no rows."""
        have = self.steps_at(width)
        if not have:
            return None
        if longest:
            return have[-1]
        base = self.spec.steps_at(width, self.spec.base_horizon())
        return base if base in have else have[0]

    @property
    def rules(self) -> list[str]:
        """Rule labels in the spec's order, then any others the table holds."""
        return rule_order(self.spec, self.df["rule"])

    def has_sigma(self) -> bool:
        return "sigma_max" in self.df and self.df["sigma_max"].notna().any()

    def curves(self, cell_id: str) -> list[list[float]]:
        """The validation curve [step, tokens, loss] of a cell ([] when it has no record)."""
        rec = Store(self.root).read_record(str(cell_id))
        curves = (rec.result.curves if rec is not None and rec.result is not None else None) or {}
        return curves.get("val") or []


def load_run(run_dir: str | Path | None) -> Run:
    """RUN_DIR, or the most recently modified run under ./runs, read for reporting."""
    root = find_run(run_dir)
    store = Store(root)
    spec = store.read_spec()
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
    df["steps"] = _steps(df, spec)
    return Run(root, spec, df, cell_stats(df[df["seed"].isin(spec.train.seeds)]), store.read_classes(spec))


def _steps(df: pd.DataFrame, spec: Spec) -> pd.Series:
    """Each row's training length: the ``steps`` column, and where a row lacks it (a table
    written by hand, or a pending cell of a table written before horizons were labelled) the
    spec's steps at the row's width at the base horizon."""
    given = pd.to_numeric(df["steps"], errors="coerce") if "steps" in df else pd.Series(np.nan, index=df.index)
    fill = df["width"].map(lambda w: spec.steps_at(int(w)))
    return given.where(given.notna(), fill).astype(int)


def log2(x) -> np.ndarray | float:
    """log2 that maps 0 (no weight decay) to -inf without a warning."""
    with np.errstate(divide="ignore"):
        return np.log2(x)


def _at_steps(frame: pd.DataFrame, steps: int | None) -> pd.Series | bool:
    return True if steps is None else frame["steps"] == steps


def at_point(frame: pd.DataFrame, rule: str, width: int, eta: float, wd: float, steps: int | None = None) -> pd.Series:
    """The rows of one sweep point (rule, width, eta, wd; and ``steps`` when given) of a
    results or stats frame: eta and wd match to 1e-9 relative (they went through text)."""
    return (
        (frame["rule"] == rule)
        & (frame["width"] == width)
        & _at_steps(frame, steps)
        & np.isclose(frame["eta"], eta, rtol=1e-9, atol=0)
        & np.isclose(frame["wd"], wd, rtol=1e-9, atol=0)
    )


def panel(stats: pd.DataFrame, rule: str, width: int, steps: int | None = None) -> pd.DataFrame:
    """The rows of one (rule, width) of a results or stats frame, at ``steps`` when given:
    one heatmap panel."""
    return stats[(stats["rule"] == rule) & (stats["width"] == width) & _at_steps(stats, steps)]


def seed_losses(
    frame: pd.DataFrame, rule: str, width: int, eta: float, wd: float, steps: int | None = None
) -> dict[int, float]:
    """Final validation loss of each finished seed of one sweep point of a results frame."""
    hit = frame[at_point(frame, rule, width, eta, wd, steps) & finished(frame, "final_val_loss")]
    return {int(r.seed): float(r.final_val_loss) for r in hit.itertuples()}
