"""The diagonal ridge (valley) of an (eta, lambda) loss grid: the axis of a local quadratic fit.

Coordinates are x = log2 eta and y = log2 lambda, both in octaves. Around the best finished
cell (lowest seed-mean loss; wd = 0 and eta = 0 cells are left out, log2 has no place for
them) the finished cells within WINDOW grid steps on each axis (at most a 5 x 5 block) are
fitted by least squares with the quadratic surface

    z = c0 + c1 x + c2 y + c3 x^2 + c4 x y + c5 y^2,

which needs MIN_CELLS cells spanning at least 3 values of each axis. Its Hessian
H = [[2 c3, c4], [c4, 2 c5]] has two principal directions; the valley's axis is the one of
least curvature (the eigenvector v of the smaller eigenvalue), drawn through the fitted
vertex. The ridge slope is s = v_x / v_y: eta ~ lambda**s, so s = -1 is an iso-(eta*lambda)
valley, s = +1 an iso-(eta/lambda) one and s = 0 a valley along lambda at fixed eta. When
|s| > ALONG_ETA the valley runs along eta at fixed lambda: s is reported as infinite.

The per-row minima (each lambda row's best eta) are not the axis: for an oblique valley
that is not aligned with the grid they are biased toward the eta axis (s toward 0; an
exact iso-(eta*lambda) valley with 4:1 curvatures gives s = -0.6). They are kept as
``points`` for the figure only.

No ridge is reported (``reason`` says why) below MIN_POINTS distinct values on either axis,
with too few cells around the optimum, when H is not positive definite (the fitted surface
is not a bowl), or when its two curvatures are within MIN_RATIO of each other (a round
bowl has no direction).

The 95% interval is a percentile bootstrap of N_BOOT refits (fixed RNG seed, so the output
is deterministic), of the valley's angle atan(s), so that it is well defined near s = inf:
- with seed rows that give every fitted cell at least MIN_SEEDS_BOOT (5) finished seeds,
  over seeds: the seeds are drawn with replacement, the same draw for every cell (seeds
  share batches and initialisation across cells), and each cell's mean recomputed;
- otherwise a residual bootstrap over cells: the fitted surface plus the fit's residuals
  drawn with replacement (inflated by sqrt(n / (n - 6))); it needs n >= 9 cells, else the
  interval is unbounded. The residuals hold both the seed noise of the cell means and the
  surface's departure from a quadratic.
With 2 or 3 seeds a seed bootstrap has too few distinct resamples: on 100 planted 9 x 9
valleys (slope -1, curvatures 4:1, noise 0.05 per seed, as in tests/reports/test_ridge.py) its
"95%" interval held the true slope 52 times with 2 seeds, 72 with 3 and 90 with 5; the
residual bootstrap's 92 times with 1 or 2 seeds.
An interval that reaches the eta direction (|s| -> inf) is reported as unbounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_POINTS = 5  # distinct values needed on each axis to fit a ridge at all
WINDOW = 2  # grid steps either side of the best cell, on each axis, that are fitted
MIN_CELLS = 6  # finished cells the fit needs (the surface has 6 coefficients)
MIN_RATIO = 2.0  # the larger curvature must be at least this many times the smaller
ALONG_ETA = 100.0  # |s| above which the valley is said to run along eta (s = inf)
N_BOOT = 400  # bootstrap refits
BOOT_SEED = 0  # their RNG seed
MIN_SEEDS_BOOT = 5  # seeds per cell for the seed bootstrap (with 2 its "95%" covered 52%, with 3 72%)
MIN_RESID_CELLS = 9  # cells for the residual bootstrap (3 residual degrees of freedom)


@dataclass(frozen=True)
class Ridge:
    slope: float | None  # s in eta ~ lambda**s (d log2 eta / d log2 lambda along the valley);
    #                            math.inf when the valley runs along eta; None when refused
    lo: float | None = None  # 95% bootstrap interval of s (-inf, inf when unbounded)
    hi: float | None = None
    intercept: float | None = None  # log2 eta of the axis at log2 lambda = 0 (None when s is inf)
    points: tuple[tuple[float, float], ...] = ()  # (log2 eta, log2 lambda) of each row's minimum (figure only)
    reason: str | None = None  # why no ridge was fitted
    vertex: tuple[float, float] | None = None  # the fitted surface's centre (log2 eta, log2 lambda)
    direction: tuple[float, float] | None = None  # unit vector (dx, dy) along the valley, dy >= 0
    curvatures: tuple[float, float] | None = None  # H's eigenvalues: (along, across) the valley
    cells: int = 0  # cells fitted
    interval: str = ""  # how the interval was found

    @property
    def ok(self) -> bool:
        return self.slope is not None

    @property
    def along_eta(self) -> bool:
        return self.ok and math.isinf(self.slope)

    @property
    def half_width(self) -> float | None:
        """Half the 95% interval's length (inf when unbounded; the interval may be asymmetric)."""
        return None if self.lo is None else (self.hi - self.lo) / 2

    @property
    def ratio(self) -> float | None:
        """How many times the across-valley curvature exceeds the along-valley one."""
        return None if self.curvatures is None else self.curvatures[1] / self.curvatures[0]

    def _interval(self) -> str:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return "interval unbounded"
        return f"[{_num(self.lo)}, {_num(self.hi)}]"

    def describe(self) -> str:
        if not self.ok:
            return f"no ridge fitted: {self.reason}"
        how = f"95% {self.interval}, {self.cells} cells, curvatures {self.ratio:.1f}:1"
        if self.along_eta:
            return f"ridge: the valley runs along eta at fixed lambda (|s| > {ALONG_ETA:g}; {how})"
        return f"ridge: eta ~ lambda^s, s = {_num(self.slope)} {self._interval()} ({how})"

    def short(self) -> str:
        """One line for a figure panel."""
        if not self.ok:
            return "no ridge: " + self.reason
        if self.along_eta:
            return "ridge along η (λ fixed)"
        return f"ridge η ∝ λ^s: s = {_num(self.slope)} {self._interval()} (95%)".replace("-", "−")


def _num(v: float) -> str:
    """+0.00 for a value that rounds to zero, never -0.00."""
    return f"{round(v, 2) + 0.0:+.2f}"


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
    x0, x1, x2 = xs[i - 1 : i + 2]
    y0, y1, y2 = ls[i - 1 : i + 2]
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / den
    if a <= 0:
        return float(x1)
    return float(np.clip(-b / (2 * a), x0, x2))


def row_minima(cells: pd.DataFrame) -> tuple[tuple[float, float], ...]:
    """(log2 eta, log2 lambda) of the best eta of each lambda row whose optimum is inside the row."""
    pts = []
    for wd, row in cells.groupby("wd"):
        row = row.sort_values("eta")
        x = _row_minimum(np.log2(row["eta"].to_numpy(float)), row["loss"].to_numpy(float))
        if x is not None:
            pts.append((x, math.log2(wd)))
    return tuple(pts)


def _design(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])


def _axis(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H's eigenvalues (ascending) and the unit least-curvature direction (dx, dy), dy >= 0."""
    c3, c4, c5 = coef[3:]
    w, V = np.linalg.eigh(np.array([[2 * c3, c4], [c4, 2 * c5]]))
    v = V[:, 0]
    if v[1] < 0 or (v[1] == 0 and v[0] < 0):
        v = -v
    return w, v


def _angle(v: np.ndarray) -> float:
    """atan(s) of the direction (dx, dy), dy >= 0: in [-pi/2, pi/2]."""
    return math.atan2(v[0], v[1])


def _boot_angles(A: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """The valley angle of each bootstrap replicate (rows of ``zs``, NaN = cell left out)."""
    out = []
    for z in zs:
        ok = np.isfinite(z)
        if ok.sum() < MIN_CELLS or np.linalg.matrix_rank(A[ok]) < 6:
            continue
        coef = np.linalg.lstsq(A[ok], z[ok], rcond=None)[0]
        out.append(_angle(_axis(coef)[1]))
    return np.array(out)


def _seed_matrix(fit: pd.DataFrame, seeds: pd.DataFrame | None) -> np.ndarray | None:
    """Losses of the fitted cells (rows) by seed (columns), NaN where a seed did not finish;
    None without seed rows or when a cell has fewer than MIN_SEEDS_BOOT finished seeds."""
    if seeds is None or "seed" not in seeds or seeds.empty:
        return None
    ids = sorted(seeds["seed"].unique())
    col = {s: k for k, s in enumerate(ids)}
    L = np.full((len(fit), len(ids)), np.nan)
    se, sw = seeds["eta"].to_numpy(float), seeds["wd"].to_numpy(float)
    sl, sk = seeds["loss"].to_numpy(float), seeds["seed"].to_numpy()
    for i, (eta, wd) in enumerate(zip(fit["eta"], fit["wd"])):
        hit = np.isclose(se, eta, rtol=1e-9, atol=0) & np.isclose(sw, wd, rtol=1e-9, atol=0) & np.isfinite(sl)
        for loss, s in zip(sl[hit], sk[hit]):
            L[i, col[s]] = loss
    return L if np.isfinite(L).sum(axis=1).min() >= MIN_SEEDS_BOOT else None


def _percentile_interval(alpha: float, angles: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of s = tan(angle), the angles taken relative to ``alpha``
    modulo pi; unbounded when it reaches the eta direction or too few replicates fitted."""
    if len(angles) < N_BOOT // 2:
        return -math.inf, math.inf
    d = (angles - alpha + math.pi / 2) % math.pi - math.pi / 2
    a_lo, a_hi = alpha + np.percentile(d, [2.5, 97.5])
    if a_lo <= -math.pi / 2 + 1e-9 or a_hi >= math.pi / 2 - 1e-9:
        return -math.inf, math.inf
    return math.tan(a_lo), math.tan(a_hi)


def fit_ridge(cells: pd.DataFrame, seeds: pd.DataFrame | None = None) -> Ridge:
    """Fit the ridge of one panel (the method is the module docstring's).

    ``cells``: one row per grid cell, columns eta, wd (base coordinates) and loss, the mean
    over seeds (NaN for diverged, failed or missing cells). ``seeds`` (optional): one row per
    (cell, seed), columns eta, wd, seed and loss (NaN for a seed that did not finish), for the
    seed bootstrap; rows of other cells are ignored."""
    d = cells[(cells["eta"] > 0) & (cells["wd"] > 0)]
    n_eta, n_wd = d["eta"].nunique(), d["wd"].nunique()
    if n_eta < MIN_POINTS or n_wd < MIN_POINTS:
        return Ridge(None, reason=f"{n_eta} η x {n_wd} λ values, needs ≥ {MIN_POINTS} each")
    pts = row_minima(d)
    done = d[np.isfinite(d["loss"].to_numpy(float))]
    if done.empty:
        return Ridge(None, points=pts, reason="no finished cells")
    etas, wds = np.sort(d["eta"].unique()), np.sort(d["wd"].unique())
    j = np.searchsorted(etas, done["eta"].to_numpy(float))
    i = np.searchsorted(wds, done["wd"].to_numpy(float))
    k = int(np.argmin(done["loss"].to_numpy(float)))
    near = (np.abs(j - j[k]) <= WINDOW) & (np.abs(i - i[k]) <= WINDOW)
    fit = done[near]
    x, y = np.log2(fit["eta"].to_numpy(float)), np.log2(fit["wd"].to_numpy(float))
    z = fit["loss"].to_numpy(float)
    x0, y0 = math.log2(done["eta"].iloc[k]), math.log2(done["wd"].iloc[k])
    A = _design(x - x0, y - y0)  # centred on the best cell
    n = len(fit)
    if n < MIN_CELLS or len(np.unique(x)) < 3 or len(np.unique(y)) < 3 or np.linalg.matrix_rank(A) < 6:
        return Ridge(
            None,
            points=pts,
            cells=n,
            reason=f"{n} finished cells within {WINDOW} steps of the best, over {len(np.unique(x))} η x "
            f"{len(np.unique(y))} λ values; the quadratic fit needs {MIN_CELLS}, over ≥ 3 of each",
        )
    coef = np.linalg.lstsq(A, z, rcond=None)[0]
    w, v = _axis(coef)
    flat = 1e-9 * max(float(np.ptp(z)), 1e-12)  # a curvature this small is rounding: no curvature
    if w[0] <= flat:
        return Ridge(
            None,
            points=pts,
            cells=n,
            curvatures=(float(w[0]), float(w[1])),
            reason="not a bowl: the fitted surface does not curve up"
            if w[1] <= flat
            else "not a bowl: the fitted surface is a saddle",
        )
    if w[1] < MIN_RATIO * w[0]:
        return Ridge(
            None,
            points=pts,
            cells=n,
            curvatures=(float(w[0]), float(w[1])),
            reason=f"curvatures within {MIN_RATIO:g}× of each other ({w[1] / w[0]:.1f}:1)",
        )
    H = np.array([[2 * coef[3], coef[4]], [coef[4], 2 * coef[5]]])
    cx, cy = np.linalg.solve(H, -coef[1:3]) + (x0, y0)  # the vertex
    alpha = _angle(v)
    s = math.tan(alpha) if abs(v[0]) < ALONG_ETA * abs(v[1]) else math.inf

    rng = np.random.default_rng(BOOT_SEED)
    L = _seed_matrix(fit, seeds)
    if L is not None:
        m = L.shape[1]
        draws = rng.integers(0, m, size=(N_BOOT, m))
        with np.errstate(invalid="ignore"):
            zs = np.stack([np.nanmean(L[:, r], axis=1) for r in draws])
        how = f"seed bootstrap over {m} seeds"
        lo, hi = _percentile_interval(alpha, _boot_angles(A, zs))
    elif n >= MIN_RESID_CELLS:
        fitted = A @ coef
        resid = (z - fitted) * math.sqrt(n / (n - 6))
        zs = fitted + resid[rng.integers(0, n, size=(N_BOOT, n))]
        how = "residual bootstrap over cells"
        lo, hi = _percentile_interval(alpha, _boot_angles(A, zs))
    else:
        how = f"no interval: {n} cells, {MIN_RESID_CELLS} needed"
        lo, hi = -math.inf, math.inf
    return Ridge(
        s,
        lo,
        hi,
        None if math.isinf(s) else float(cx - s * cy),
        pts,
        None,
        (float(cx), float(cy)),
        (float(v[0]), float(v[1])),
        (float(w[0]), float(w[1])),
        n,
        how,
    )
