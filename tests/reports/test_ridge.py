"""The ridge fit on planted quadratic valleys: the valley's axis (least-curvature direction
of a local quadratic fit) recovered at slopes -1, 0, +1 and along eta; refused for a round
bowl, a surface that is not a bowl, too few cells, and below 5 points on an axis; and drawn
on a heatmap panel."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from runfixtures import make_run  # noqa: E402

from lwscale.reports.fits import slope as ls_slope  # noqa: E402
from lwscale.reports.plots import GridAxes, colour_norm, heatmap_panel, heatmaps  # noqa: E402
from lwscale.reports.ridge import MIN_POINTS, MIN_RATIO, fit_ridge  # noqa: E402
from lwscale.reports.run import load_run  # noqa: E402

CENTRE = (-8.0, -3.0)


def valley(slope, n_eta=9, n_wd=9, ratio=4.0, across=0.2, noise=0.0, seeds=(0,), seed=0, centre=CENTRE):
    """A planted valley in x = log2 eta, y = log2 lambda: z = 3 + across (u.d)^2 + across/ratio (v.d)^2,
    d = (x, y) - centre, v the unit axis (slope, 1) (along eta for slope = inf), u across it.
    Returns the per-cell seed means and the per-seed rows (noise: per seed and cell)."""
    rng = np.random.default_rng(seed)
    x0, y0 = centre
    v = np.array([slope, 1.0]) / math.hypot(slope, 1.0) if math.isfinite(slope) else np.array([1.0, 0.0])
    u = np.array([-v[1], v[0]])
    rows = []
    for y in y0 + np.arange(n_wd) - n_wd // 2:
        for x in x0 + np.arange(n_eta) - n_eta // 2:
            d = np.array([x - x0, y - y0])
            z = 3 + across * (u @ d) ** 2 + across / ratio * (v @ d) ** 2
            rows += [{"eta": 2.0**x, "wd": 2.0**y, "seed": s, "loss": z + noise * rng.normal()} for s in seeds]
    per = pd.DataFrame(rows)
    return per.groupby(["eta", "wd"], as_index=False)["loss"].mean(), per


@pytest.mark.parametrize("slope", [-1.0, 0.0, 1.0])
def test_exact_valley_axis_recovered(slope):
    r = fit_ridge(valley(slope)[0])
    assert r.ok, r.reason
    assert r.slope == pytest.approx(slope, abs=1e-9)
    assert r.vertex == pytest.approx(CENTRE, abs=1e-9)
    assert r.intercept == pytest.approx(CENTRE[0] - slope * CENTRE[1], abs=1e-9)
    assert r.ratio == pytest.approx(4.0, rel=1e-9) and r.cells == 25
    assert r.lo == pytest.approx(slope, abs=1e-9) and r.hi == pytest.approx(slope, abs=1e-9)  # no noise, no width


def test_row_minima_are_biased_the_axis_is_not():
    """The old estimator, a line through each lambda row's best eta, reads an iso-(eta*lambda)
    valley with 4:1 curvatures as s = -0.6; the quadratic's axis reads -1. The row minima are
    still returned, for the figure's dots."""
    r = fit_ridge(valley(-1.0)[0])
    x, y = np.array(r.points).T
    assert len(r.points) == 9
    assert ls_slope(y, x).value == pytest.approx(-0.6, abs=0.01)
    assert r.slope == pytest.approx(-1.0, abs=1e-9)


@pytest.mark.parametrize("slope", [-1.0, 0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_valley_slope_within_005(slope, seed):
    cells, seeds = valley(slope, noise=0.01, seeds=(0, 1), seed=seed)
    r = fit_ridge(cells, seeds)
    assert r.ok, r.reason
    assert abs(r.slope - slope) <= 0.05, r.describe()
    assert r.interval == "residual bootstrap over cells"  # 2 seeds: too few to resample
    assert r.lo <= r.slope <= r.hi and r.hi - r.lo < 0.3
    for other in {-1.0, 0.0, 1.0} - {slope}:  # the three orientations are told apart
        assert not r.lo <= other <= r.hi


def test_seed_bootstrap_with_five_seeds():
    cells, seeds = valley(-1.0, noise=0.02, seeds=range(5), seed=4)
    r = fit_ridge(cells, seeds)
    assert r.ok and abs(r.slope + 1) <= 0.05, r.describe()
    assert r.interval == "seed bootstrap over 5 seeds" and r.lo < r.slope < r.hi and r.hi - r.lo < 0.3
    assert "seed bootstrap over 5 seeds, 25 cells" in r.describe()
    # a seed missing from one fitted cell leaves 4 there: the residual bootstrap instead
    drop = (seeds["seed"] == 4) & np.isclose(seeds["eta"], 2.0**-8) & np.isclose(seeds["wd"], 2.0**-3)
    assert fit_ridge(cells, seeds[~drop]).interval == "residual bootstrap over cells"


def test_deterministic():
    cells, seeds = valley(1.0, noise=0.02, seeds=range(5), seed=7)
    assert fit_ridge(cells, seeds) == fit_ridge(cells, seeds)
    assert fit_ridge(cells) == fit_ridge(cells)


def test_valley_along_eta():
    r = fit_ridge(valley(math.inf)[0])
    assert r.ok and r.along_eta and math.isinf(r.slope) and r.intercept is None
    assert r.direction == pytest.approx((1.0, 0.0), abs=1e-9)
    assert r.short() == "ridge along η (λ fixed)"
    assert "runs along eta at fixed lambda" in r.describe()


@pytest.mark.parametrize("ratio", [1.0, 1.5])
def test_round_bowl_has_no_ridge(ratio):
    r = fit_ridge(valley(-1.0, ratio=ratio, noise=0.001, seeds=(0, 1))[0])
    assert not r.ok and r.slope is None
    assert r.reason.startswith(f"curvatures within {MIN_RATIO:g}× of each other")
    assert r.short().startswith("no ridge: curvatures within 2× of each other")


def test_ratio_above_the_threshold_is_a_ridge():
    r = fit_ridge(valley(1.0, ratio=2.5)[0])
    assert r.ok and r.slope == pytest.approx(1.0, abs=1e-9) and r.ratio == pytest.approx(2.5)


@pytest.mark.parametrize(
    "surface,reason",
    [
        (lambda x, y: -x, "not a bowl: the fitted surface does not curve up"),  # a plane: optimum off the grid
        (lambda x, y: 0.2 * x**2 - 0.05 * y**2, "not a bowl: the fitted surface is a saddle"),
        (lambda x, y: -0.2 * x**2 - 0.1 * y**2, "not a bowl: the fitted surface does not curve up"),
    ],
)
def test_not_a_bowl(surface, reason):
    d = valley(-1.0)[0]
    x, y = np.log2(d["eta"]) - CENTRE[0], np.log2(d["wd"]) - CENTRE[1]
    r = fit_ridge(d.assign(loss=3 + surface(x, y)))
    assert not r.ok and r.reason == reason, r.reason


@pytest.mark.parametrize("n_eta,n_wd", [(MIN_POINTS - 1, 7), (9, MIN_POINTS - 1), (3, 3)])
def test_refused_below_five_points_on_an_axis(n_eta, n_wd):
    r = fit_ridge(valley(-1.0, n_eta=n_eta, n_wd=n_wd)[0])
    assert not r.ok and r.slope is None
    assert f"{n_eta} η x {n_wd} λ values" in r.reason and "≥ 5" in r.reason
    assert r.describe().startswith("no ridge fitted")


def test_refused_with_too_few_cells_around_the_optimum():
    d = valley(-1.0)[0]
    keep = np.isclose(np.log2(d["wd"]), CENTRE[1]) | np.isclose(np.log2(d["eta"]), CENTRE[0])  # a cross: 17 cells
    r = fit_ridge(d.assign(loss=d["loss"].where(keep)))
    assert not r.ok and "quadratic fit needs 6" in r.reason, r.reason


def test_nan_cells_are_skipped():
    d = valley(1.0)[0]
    d.loc[d["eta"] == 2.0**-7, "loss"] = np.nan  # a diverged column inside the window
    r = fit_ridge(d)
    assert r.ok and r.cells == 20 and r.slope == pytest.approx(1.0, abs=1e-9)


def test_window_is_two_steps_around_the_best_cell():
    """Cells further than 2 grid steps from the best cell are not fitted: a wild value there changes nothing."""
    d = valley(-1.0)[0]
    far = np.log2(d["eta"]) == CENTRE[0] + 3
    r = fit_ridge(d.assign(loss=d["loss"].where(~far, 99.0)))
    assert r.ok and r.slope == pytest.approx(-1.0, abs=1e-9) and r.cells == 25


def test_no_interval_below_nine_cells():
    """The residual bootstrap needs 3 residual degrees of freedom (9 cells): with fewer the
    interval is unbounded, not a false zero width."""
    d = valley(-1.0)[0]
    x, y = np.log2(d["eta"]) - CENTRE[0], np.log2(d["wd"]) - CENTRE[1]
    keep = (x.abs() <= 1) & (y.abs() <= 1) & ~((x == 1) & (y == 1))  # 8 cells of the 3 x 3 block
    r = fit_ridge(d.assign(loss=d["loss"].where(keep)))
    assert r.ok and r.cells == 8 and r.slope == pytest.approx(-1.0, abs=1e-9)
    assert math.isinf(r.half_width) and "interval unbounded" in r.describe() and r.interval.startswith("no interval")


def _stats(cells):
    return cells.assign(status="done", n=1)


def test_panel_draws_the_axis_through_the_vertex_and_the_row_minima():
    cells, seeds = valley(-1.0, n_eta=7, n_wd=7)
    stats = _stats(cells).assign(rule="r", width=32)
    g = GridAxes(stats)
    fig, ax = plt.subplots()
    _, note = heatmap_panel(
        ax, stats, g, colour_norm(stats), None, False, seeds=seeds.assign(status="done", final_val_loss=seeds["loss"])
    )
    plt.close(fig)
    assert note == "ridge η ∝ λ^s: s = −1.00 [−1.00, −1.00] (95%)"
    line = [ln for ln in ax.lines if ln.get_gid() == "ridge"][0]
    xs, ys = line.get_data()
    assert (ys[1] - ys[0]) / (xs[1] - xs[0]) == pytest.approx(-1.0)  # slope -1 in (log2 eta, log2 lambda)
    assert ys[0] + (CENTRE[0] - xs[0]) * -1.0 == pytest.approx(CENTRE[1])  # through the vertex
    dots = [ln for ln in ax.lines if ln.get_gid() == "row-minima"][0]
    assert len(dots.get_xdata()) == 7


def test_heatmaps_of_a_run_with_a_valley(tmp_path):
    etas, wds = [2.0**k for k in range(-11, -4)], [2.0**k for k in range(-6, 1)]
    cells, seeds = valley(-1.0, n_eta=7, n_wd=7, noise=0.005, seeds=(0, 1))
    rows = [
        {
            "rule": "sqrt-wd",
            "width": 32,
            "eta": r.eta,
            "wd": r.wd,
            "seed": int(r.seed),
            "status": "done",
            "final_val_loss": r.loss,
        }
        for r in seeds.itertuples()
    ]
    root = make_run(tmp_path / "valley", rows, [32], ["sqrt-wd"], etas, wds, seeds=[0, 1], records=False)
    path = heatmaps(load_run(root), root / "figures")[0]
    assert path.exists() and path.stat().st_size > 10_000
