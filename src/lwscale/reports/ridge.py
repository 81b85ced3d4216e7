"""The diagonal ridge of an (eta, lambda) loss grid, fitted freely (SCIENCE.md section 6).

For each row of the grid (one log2 lambda) the row's best log2 eta is taken: the argmin,
refined by a parabola through it and its two neighbours when both are measured. A least-
squares line through those points, x = c + s*y with x = log2 eta and y = log2 lambda, is
the ridge: eta ~ lambda**s. s = -1 is an iso-(eta*lambda) valley, s = +1 an iso-(eta/lambda)
valley. The slope and its 95% t-interval are ``fits.slope``'s. Below MIN_POINTS distinct
values on either axis, or without enough rows that have an interior minimum, no ridge is
fitted and the reason says why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .fits import slope

MIN_POINTS = 5


@dataclass(frozen=True)
class Ridge:
    slope: float | None        # s in eta ~ lambda**s (d log2 eta / d log2 lambda); None when refused
    half_width: float | None   # 95% interval half-width of the slope
    intercept: float | None    # c: log2 eta of the ridge at log2 lambda = 0
    points: tuple[tuple[float, float], ...] = ()  # (log2 eta, log2 lambda) of each row's minimum
    reason: str | None = None  # why no ridge was fitted

    @property
    def ok(self) -> bool:
        return self.slope is not None

    def describe(self) -> str:
        if not self.ok:
            return f"no ridge fitted: {self.reason}"
        hw = "inf" if not math.isfinite(self.half_width) else f"{self.half_width:.2f}"
        return f"ridge: eta ~ lambda^s, s = {self.slope:+.2f} ± {hw} (95%, {len(self.points)} rows)"

    def short(self) -> str:
        """One or two lines for a figure panel."""
        if not self.ok:
            return "no ridge: " + self.reason
        hw = "∞" if not math.isfinite(self.half_width) else f"{self.half_width:.2f}"
        return f"ridge η ∝ λ^s: s = {self.slope:+.2f} ± {hw} (95%)"


def _row_minimum(xs: np.ndarray, ls: np.ndarray) -> float | None:
    """log2 eta of a row's minimum: the argmin, parabola-refined between measured neighbours.
    None when the row has no finite loss or its minimum lies on the row's edge."""
    ok = np.isfinite(ls)
    xs, ls = xs[ok], ls[ok]
    if len(xs) < 3:
        return None
    i = int(np.argmin(ls))
    if i == 0 or i == len(xs) - 1:
        return None
    x0, x1, x2 = xs[i - 1: i + 2]
    y0, y1, y2 = ls[i - 1: i + 2]
    # vertex of the parabola through the three points
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / den
    if a <= 0:
        return float(x1)
    return float(np.clip(-b / (2 * a), x0, x2))


def fit_ridge(cells: pd.DataFrame) -> Ridge:
    """Fit the ridge of one panel. ``cells`` has columns eta, wd (base coordinates) and
    loss (NaN for diverged, failed or missing cells)."""
    d = cells[(cells["eta"] > 0) & (cells["wd"] > 0)]
    n_eta, n_wd = d["eta"].nunique(), d["wd"].nunique()
    if n_eta < MIN_POINTS or n_wd < MIN_POINTS:
        return Ridge(None, None, None, reason=f"{n_eta} η x {n_wd} λ values, needs ≥ {MIN_POINTS} each")
    pts = []
    for wd, row in d.groupby("wd"):
        row = row.sort_values("eta")
        x = _row_minimum(np.log2(row["eta"].to_numpy(float)), row["loss"].to_numpy(float))
        if x is not None:
            pts.append((x, math.log2(wd)))
    if len(pts) < 3:
        return Ridge(None, None, None, tuple(pts),
                     reason=f"only {len(pts)} wd rows have their lr optimum inside the grid (3 needed)")
    x, y = np.array(pts).T
    if np.ptp(y) == 0:
        return Ridge(None, None, None, tuple(pts), reason="the rows with an interior optimum share one wd")
    fit = slope(y, x)     # x = log2 eta on y = log2 lambda, with its t-interval
    return Ridge(fit.value, fit.half_width, float(x.mean() - fit.value * y.mean()), tuple(pts))
