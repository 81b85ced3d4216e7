"""Least-squares slopes with confidence intervals, for the diagnostics' exponent fits.

``slope(x, y, groups)`` fits y = a_group + b * x (one intercept per group, one shared
slope) and returns b with its standard error and a 95% interval from Student's t: right
when the points are independent (the ridge fit).

``cluster_slope(x, y, clusters, groups)`` is the same fit with a 95% interval from a
cluster bootstrap: whole clusters (a training cell with its several matrix types) are
resampled with replacement and the slope refitted. The matrix types of one cell share its
training run, so they are not independent points, and Student's t over them would make
the interval too narrow. The resampling draws from a fixed seed: the same data give the
same interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (the usual table, 3 decimals)
_T975 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]
_Z975 = 1.959963984540054  # the normal 97.5% quantile


def t975(dof: int) -> float:
    """The 97.5% quantile of Student's t: the table up to 30 dof, beyond it the Cornish-Fisher
    series in 1/dof about the normal quantile (Abramowitz & Stegun 26.7.5; within 1e-5 there)."""
    if dof < 1:
        return math.inf
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = _Z975
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(g / dof ** (k + 1) for k, g in enumerate(terms))


BOOT_REPS = 2000  # cluster-bootstrap resamples
BOOT_SEED = 0  # their fixed seed: a report is reproducible
MIN_CLUSTERS = 3  # fewer clusters than this: no bootstrap interval


@dataclass
class Slope:
    value: float
    se: float  # standard error (bootstrap: the resampled slopes' spread); inf without an interval
    lo: float  # 95% interval
    hi: float
    n: int  # points used
    clusters: int | None = None  # cluster bootstrap: the clusters (cells) resampled; None: Student's t

    @property
    def half_width(self) -> float:
        """Half the 95% interval: t975(dof) * se for Student's t; half the percentile
        interval for a cluster bootstrap (inf without an interval)."""
        return (self.hi - self.lo) / 2

    @property
    def interval(self) -> str:
        return "t" if self.clusters is None else "cluster bootstrap"

    def to_dict(self) -> dict:
        f = lambda v: v if math.isfinite(v) else None  # noqa: E731
        out = {"value": f(self.value), "se": f(self.se), "ci95": [f(self.lo), f(self.hi)], "n": self.n}
        if self.clusters is not None:
            out.update(interval=self.interval, clusters=self.clusters)
        return out

    def text(self, digits: int = 3) -> str:
        if not math.isfinite(self.value):
            return "n/a"
        if not math.isfinite(self.se):
            return f"{self.value:.{digits}f} (no interval: too few {'points' if self.clusters is None else 'cells'})"
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


def _groups(groups, n: int) -> np.ndarray:
    return np.zeros(n, int) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)


def cluster_slope(x, y, clusters, groups=None, reps: int = BOOT_REPS, seed: int = BOOT_SEED) -> Slope:
    """``slope(x, y, groups)``'s value, with a 95% percentile interval from a cluster bootstrap:
    ``reps`` times, draw as many clusters as there are, with replacement (each drawn cluster
    brings all its points), refit the shared slope with one intercept per group, and take the
    2.5% and 97.5% percentiles of the refitted slopes; ``se`` is their standard deviation.
    No interval (se inf) with fewer than MIN_CLUSTERS clusters, or when fewer than half the
    resamples vary in x within a group."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    g, c = _groups(groups, len(x)), _groups(clusters, len(x))
    ok = np.isfinite(x) & np.isfinite(y)
    point = slope(x[ok], y[ok], g[ok])
    x, y, g, c = x[ok], y[ok], g[ok], np.unique(c[ok], return_inverse=True)[1].reshape(-1)
    n_cl = int(c.max()) + 1 if len(c) else 0
    if not math.isfinite(point.value):
        return Slope(math.nan, math.nan, math.nan, math.nan, point.n, n_cl)
    if n_cl < MIN_CLUSTERS:
        return Slope(point.value, math.inf, -math.inf, math.inf, point.n, n_cl)
    # centre within groups once (a constant shift per group leaves every weighted fit's slope alone)
    n_g = int(g.max()) + 1
    for k in range(n_g):
        x[g == k] -= x[g == k].mean()
        y[g == k] -= y[g == k].mean()
    # each cluster's sums per group: a resample weights them by how often it drew the cluster
    sums = np.zeros((5, n_cl, n_g))
    for i, v in enumerate((np.ones_like(x), x, y, x * x, x * y)):
        np.add.at(sums[i], (c, g), v)
    one, sx, sy, sxx_, sxy_ = sums
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_cl, np.full(n_cl, 1.0 / n_cl), size=reps).astype(float)  # [reps, clusters]
    sw, swx, swy = counts @ one, counts @ sx, counts @ sy  # [reps, groups]
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = np.where(sw > 0, swx / sw, 0.0), np.where(sw > 0, swy / sw, 0.0)
    sxx = (counts @ sxx_ - sw * mx * mx).sum(1)
    sxy = (counts @ sxy_ - sw * mx * my).sum(1)
    tol = 1e-12 * np.maximum(1.0, (counts @ sxx_).sum(1))
    b = np.where(sxx > tol, sxy / np.where(sxx > tol, sxx, 1.0), np.nan)
    b = b[np.isfinite(b)]
    if len(b) < reps / 2:
        return Slope(point.value, math.inf, -math.inf, math.inf, point.n, n_cl)
    lo, hi = np.percentile(b, [2.5, 97.5])
    return Slope(point.value, float(b.std(ddof=1)), float(lo), float(hi), point.n, n_cl)
