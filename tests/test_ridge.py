"""The ridge fit on synthetic valleys: both orientations recovered within the interval,
and refused below 5 points on an axis."""
import numpy as np
import pandas as pd
import pytest

from lwscale.reports.fits import t975
from lwscale.reports.ridge import MIN_POINTS, fit_ridge


def valley(slope: float, n_eta=9, n_wd=5, noise=0.0, seed=0, centre=(-8.0, -3.0)) -> pd.DataFrame:
    """Loss = 0.2 (x - ridge(y))^2 + 0.02 (y - y0)^2 + noise, x = log2 eta, y = log2 lambda,
    ridge(y) = x0 + slope (y - y0): a straight valley of the given slope."""
    rng = np.random.default_rng(seed)
    x0, y0 = centre
    xs = x0 + np.arange(n_eta) - n_eta // 2
    ys = y0 + np.arange(n_wd) - n_wd // 2
    rows = []
    for y in ys:
        for x in xs:
            loss = 3 + 0.2 * (x - (x0 + slope * (y - y0))) ** 2 + 0.02 * (y - y0) ** 2 + noise * rng.normal()
            rows.append({"eta": 2.0**x, "wd": 2.0**y, "loss": loss})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("slope", [-1.0, 1.0])
def test_exact_valley_slope_recovered(slope):
    r = fit_ridge(valley(slope))
    assert r.ok, r.reason
    assert r.slope == pytest.approx(slope, abs=1e-9)
    assert r.intercept == pytest.approx(-8.0 - slope * -3.0, abs=1e-9)
    assert len(r.points) == 5


@pytest.mark.parametrize("slope", [-1.0, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_valley_within_interval(slope, seed):
    r = fit_ridge(valley(slope, n_wd=7, noise=0.01, seed=seed))
    assert r.ok, r.reason
    assert abs(r.slope - slope) <= r.half_width, r.describe()
    assert 0 < r.half_width < 0.5           # tight enough to tell -1 from +1
    # the two orientations are told apart: the interval excludes the opposite slope
    assert abs(r.slope + slope) > r.half_width


@pytest.mark.parametrize("n_eta,n_wd", [(MIN_POINTS - 1, 7), (9, MIN_POINTS - 1), (3, 3)])
def test_refused_below_five_points_on_an_axis(n_eta, n_wd):
    r = fit_ridge(valley(-1.0, n_eta=n_eta, n_wd=n_wd))
    assert not r.ok and r.slope is None
    assert f"{n_eta} η x {n_wd} λ values" in r.reason and "≥ 5" in r.reason
    assert r.describe().startswith("no ridge fitted")


def test_refused_when_the_optimum_leaves_the_grid():
    d = valley(-1.0)
    d["loss"] = -np.log2(d["eta"])          # loss falls with eta in every row: optimum on the edge
    r = fit_ridge(d)
    assert not r.ok and "inside the grid" in r.reason


def test_nan_cells_are_skipped():
    d = valley(1.0, n_wd=7)
    d.loc[d["eta"] == d["eta"].max(), "loss"] = np.nan   # a diverged column
    r = fit_ridge(d)
    assert r.ok and r.slope == pytest.approx(1.0, abs=1e-9)


def test_interval_is_the_least_squares_t_interval():
    """The ridge's line and half-width are ordinary least squares with a t-interval on its points."""
    r = fit_ridge(valley(-1.0, n_wd=7, noise=0.01, seed=3))
    x, y = np.array(r.points).T
    A = np.stack([np.ones_like(y), y], axis=1)
    coef, res, *_ = np.linalg.lstsq(A, x, rcond=None)
    se = np.sqrt(res[0] / (len(x) - 2) / ((y - y.mean()) ** 2).sum())
    assert r.slope == pytest.approx(coef[1], rel=1e-9) and r.intercept == pytest.approx(coef[0], rel=1e-9)
    assert r.half_width == pytest.approx(t975(len(x) - 2) * se, rel=1e-9)
    assert t975(5) == 2.571
