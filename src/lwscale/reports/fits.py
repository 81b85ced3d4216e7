"""Least-squares slopes with confidence intervals, for the diagnostics' exponent fits.

``slope(x, y, groups)`` fits y = a_group + b * x (one intercept per group, one shared
slope) and returns b with its standard error and a 95% interval from Student's t.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (the usual table, 3 decimals)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]
_Z975 = 1.959963984540054  # the normal 97.5% quantile


def t975(dof: int) -> float:
    """The 97.5% quantile of Student's t: the table up to 30 dof, beyond it the Cornish-Fisher
    series in 1/dof about the normal quantile (Abramowitz & Stegun 26.7.5; within 1e-5 there)."""
    if dof < 1:
        return math.inf
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = _Z975
    terms = ((z**3 + z) / 4, (5 * z**5 + 16 * z**3 + 3 * z) / 96, (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
             (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160)
    return z + sum(g / dof ** (k + 1) for k, g in enumerate(terms))


@dataclass
class Slope:
    value: float
    se: float         # standard error; inf with no residual degrees of freedom
    lo: float         # 95% interval
    hi: float
    n: int            # points used

    @property
    def half_width(self) -> float:
        """Half the 95% interval: t975(dof) * se (inf with no residual degrees of freedom)."""
        return (self.hi - self.lo) / 2

    def to_dict(self) -> dict:
        f = lambda v: v if math.isfinite(v) else None  # noqa: E731
        return {"value": f(self.value), "se": f(self.se), "ci95": [f(self.lo), f(self.hi)], "n": self.n}

    def text(self, digits: int = 3) -> str:
        if not math.isfinite(self.value):
            return "n/a"
        if not math.isfinite(self.se):
            return f"{self.value:.{digits}f} (no interval: too few points)"
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def slope(x, y, groups=None) -> Slope:
    """Shared slope of y on x with one intercept per group (all one group by default).
    NaN when x does not vary within any group."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    g = np.zeros(len(x), int) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, g = x[ok], y[ok], g[ok]
    n = len(x)
    nan = Slope(math.nan, math.nan, math.nan, math.nan, n)
    if n < 2:
        return nan
    xc, yc = x.copy(), y.copy()
    for k in np.unique(g):  # within-group centring = one intercept per group
        xc[g == k] -= x[g == k].mean()
        yc[g == k] -= y[g == k].mean()
    sxx = float((xc**2).sum())
    if sxx <= 1e-12 * max(1.0, float((x**2).sum())):
        return nan
    b = float((xc * yc).sum() / sxx)
    dof = n - len(np.unique(g)) - 1
    if dof < 1:
        return Slope(b, math.inf, -math.inf, math.inf, n)
    resid = yc - b * xc
    se = math.sqrt(float((resid**2).sum()) / dof / sxx)
    t = t975(dof)
    return Slope(b, se, b - t * se, b + t * se, n)
