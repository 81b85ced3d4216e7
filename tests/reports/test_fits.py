"""The shared least-squares slope, its Student-t quantile and its cluster bootstrap, against
known values; the equilibrium scale S of the weight-norm recurrence; and the diagnose
exponent fits on sigma_max synthesised from that recurrence under every schedule."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lwscale.reports.fits import cluster_slope, slope, t975


@pytest.mark.parametrize("dof,t", [(1, 12.706), (2, 4.303), (3, 3.182), (10, 2.228), (29, 2.045), (30, 2.042)])
def test_t975_table_values(dof, t):
    assert t975(dof) == t


@pytest.mark.parametrize(
    "dof,t", [(31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799), (1000, 1.9623), (10**6, 1.9600)]
)
def test_t975_beyond_the_table(dof, t):
    assert t975(dof) == pytest.approx(t, abs=1e-4)


def test_t975_is_continuous_and_decreasing_past_the_table():
    ts = [t975(d) for d in range(25, 200)]
    assert all(a > b for a, b in zip(ts, ts[1:]))
    assert 0 < t975(30) - t975(31) < 0.004  # no jump where the table hands over to the series
    assert t975(0) == math.inf


def test_slope_interval_uses_t975():
    rng = np.random.default_rng(0)
    x = np.arange(50.0)
    y = 1.5 + 0.3 * x + rng.normal(size=50)
    s = slope(x, y)
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    se = math.sqrt((resid @ resid) / 48 / ((x - x.mean()) ** 2).sum())
    assert s.value == pytest.approx(b, rel=1e-9) and s.se == pytest.approx(se, rel=1e-9)
    assert s.hi - s.value == pytest.approx(t975(48) * se, rel=1e-12)
    assert s.half_width == pytest.approx(t975(48) * se, rel=1e-12)
    assert t975(48) == pytest.approx(2.0106, abs=1e-4)


def _clustered(n_cells=60, types=7, cell_sd=0.1, seed=1):
    """A shared slope 0.75 in x (one x per cell), one intercept per type, noise shared by a
    cell's types (sd ``cell_sd``) and per point (0.02)."""
    rng = np.random.default_rng(seed)
    x = np.repeat(rng.uniform(0, 3, n_cells), types)
    cell, t = np.repeat(np.arange(n_cells), types), np.tile(np.arange(types), n_cells)
    y = 0.75 * x + 0.1 * t + np.repeat(rng.normal(0, cell_sd, n_cells), types) + rng.normal(0, 0.02, n_cells * types)
    return x, y, cell, t


def test_cluster_slope_keeps_the_fit_and_widens_the_interval_for_shared_noise():
    x, y, cell, t = _clustered()
    b, naive = cluster_slope(x, y, cell, t), slope(x, y, t)
    assert b.value == naive.value and b.n == naive.n == 420 and b.clusters == 60
    assert b.lo < 0.75 < b.hi and b.lo < b.value < b.hi
    # 7 points per cell carry one cell's noise: Student's t over 420 points is far too narrow
    assert b.half_width > 2 * naive.half_width
    # the resampling is seeded: the same data give the same interval, another seed a close one
    assert cluster_slope(x, y, cell, t).to_dict() == b.to_dict()
    other = cluster_slope(x, y, cell, t, seed=1)
    assert other.lo != b.lo and other.lo == pytest.approx(b.lo, abs=0.25 * b.half_width)
    d = b.to_dict()
    assert d["interval"] == "cluster bootstrap" and d["clusters"] == 60 and d["ci95"] == [b.lo, b.hi]
    assert "interval" not in naive.to_dict()  # the ridge's t-interval slope is unchanged


def test_cluster_slope_coverage_of_planted_slope():
    """The percentile interval holds the planted slope in about 95% of repeated experiments
    (60 of them, 30 cells each: 0.85 or more)."""
    hits = []
    for seed in range(60):
        x, y, cell, t = _clustered(n_cells=30, seed=seed)
        s = cluster_slope(x, y, cell, t, reps=400)
        hits.append(s.lo <= 0.75 <= s.hi)
    assert np.mean(hits) >= 0.85


def test_cluster_slope_without_enough_cells():
    x, y, cell, t = _clustered(n_cells=2)
    s = cluster_slope(x, y, cell, t)
    assert s.value == slope(x, y, t).value and s.se == math.inf and s.clusters == 2
    assert s.text().endswith("(no interval: too few cells)")
    flat = cluster_slope(np.ones(10), np.arange(10.0), np.arange(10))
    assert math.isnan(flat.value) and flat.text() == "n/a"


def test_equilibrium_scale_solves_the_recurrence():
    """S^2 = sum_t lr_t^2 prod_{s>t} (1 - lr_s wd)^2 is the recurrence run step by step; with a
    constant lr it tends to lr / (wd (2 - lr wd)); under cosine to 10% it ends at 0.63, 0.44,
    0.35 of sqrt(lr_peak / 2wd) after 3, 10, 30 timescales (the numbers of the issue)."""
    from lwscale.reports.diagnose_points import equilibrium_scale, schedule_factors

    f = schedule_factors(3000, 150, "wsd")
    lr, wd = np.array([1e-3, 3e-3, 1e-2]), np.array([0.5, 0.3, 0.2])
    n = np.zeros(3)
    for ft in f:
        n = (1 - lr * ft * wd) ** 2 * n + (lr * ft) ** 2
    assert equilibrium_scale(lr, wd, f) == pytest.approx(np.sqrt(n), rel=1e-9)
    const = schedule_factors(20000, 0, "constant")
    assert equilibrium_scale(1e-2, 0.5, const)[0] == pytest.approx(math.sqrt(1e-2 / (0.5 * (2 - 5e-3))), rel=1e-9)
    cos = schedule_factors(10000, 500, "cosine")
    got = [
        equilibrium_scale(1e-3, T / (1e-3 * cos.sum()), cos)[0] / math.sqrt(1e-3 / (2 * T / (1e-3 * cos.sum())))
        for T in (3, 10, 30)
    ]
    assert got == pytest.approx([0.626, 0.444, 0.352], abs=2e-3)
    assert math.isnan(equilibrium_scale(1.0, 2.0, const)[0])  # lr*wd >= 1: no equilibrium
    assert equilibrium_scale(1e-3, 0.0, const)[0] == pytest.approx(1e-3 * math.sqrt(20000))  # no decay: a random walk


# ---- the exponent fits on sigma_max synthesised from the weight-norm recurrence -----------------
# sigma_max of every (cell, matrix type) is simulated step by step over the cell's own lr schedule
# (||W||^2 <- (1 - lr_t wd)^2 ||W||^2 + lr_t^2, from an init norm), times d^alpha, (lr/wd)^(beta - 1/2)
# (the recurrence itself gives (lr/wd)^(1/2)), a constant per type and log-normal noise per cell
# and per matrix; the frame goes through diagnose.load_points as a run directory's would.
WIDTHS = (64, 128, 256, 512)
RULES = {"sqrt": ["sqrt-wd"], "const": ["const-wd"], "three": ["sqrt-wd", "const-wd", "linear-wd"]}


def synthetic_points(rules, schedule, alpha=0.75, beta=0.5, steps=12000, seed=0, noise=1.0):
    """(points as load_points returns them, the spec) of a synthetic run: widths 64-512 (base
    64), a 4x4 grid eta 2^-8..2^-5, lambda 0.1..0.8, one seed, the built-in model's 7 types."""
    from lwscale.model.config import MATRIX_TYPES
    from lwscale.reports.diagnose_points import load_points
    from lwscale.reports.run import Run
    from lwscale.rundir.record import CellRecord
    from lwscale.science.schedule import lr_factor
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec(
        {
            "model": {"widths": list(WIDTHS), "depth": 1},
            "train": {"steps": steps, "warmup": 400, "schedule": schedule, "seeds": [0]},
            "grid": {"eta": [2.0**-k for k in (8, 7, 6, 5)], "wd": [0.1, 0.2, 0.4, 0.8]},
            "rules": rules,
        }
    )
    plan = make_plan(spec)
    cells = plan.cells
    lr = np.array([next(g.lr for g in c.groups if g.cls == "matrix") for c in cells])
    wd = np.array([next(g.wd for g in c.groups if g.cls == "matrix") for c in cells])
    n = np.full(len(cells), 2e-3)  # the init's ||W||^2, near the grid's equilibria
    for t in range(steps):  # the recurrence, one optimizer step at a time
        lr_t = lr * lr_factor(t, steps, spec.warmup_steps(steps), schedule)
        n = (1 - lr_t * wd) ** 2 * n + lr_t**2
    rng = np.random.default_rng(seed)
    width = np.array([c.width for c in cells], float)
    base = np.sqrt(n) * width**alpha * (lr / wd) ** (beta - 0.5) * np.exp(rng.normal(0, 0.015 * noise, len(cells)))
    records = {
        c.id: CellRecord.from_json(
            {
                "id": c.id,
                "status": "done",
                "model": c.model.to_dict(),
                "diagnostics": {
                    "sigma_max": {
                        "by_type": {
                            t: float(b * (1 + 0.3 * i) * math.exp(rng.normal(0, 0.01 * noise)))
                            for i, t in enumerate(MATRIX_TYPES)
                        }
                    }
                },
            }
        )
        for c, b in zip(cells, base)
    }
    by_id = plan.by_id()
    df = pd.DataFrame(
        [
            dict(
                rule=lab.rule,
                width=lab.width,
                m=lab.width / 64,
                eta=lab.eta,
                wd=lab.wd,
                seed=lab.seed,
                cell_id=cid,
                status="done",
                final_val_loss=3.0,
                steps=steps,
                lr_matrix=by_id[cid].groups[0].lr,
                wd_matrix=by_id[cid].groups[0].wd,
                timescales=by_id[cid].matrix_timescales(),
            )
            for lab, cid in plan.labels
        ]
    )
    return load_points(Run(Path("synthetic"), spec, df, None), records), spec


@pytest.mark.parametrize("schedule", ["constant", "cosine", "wsd"])
@pytest.mark.parametrize("grid", list(RULES))
def test_planted_exponents_recovered_under_every_schedule(grid, schedule):
    """alpha = 0.75 and beta = 0.5 come back within 0.03 whatever the schedule and rules, and
    alpha's interval holds 0.75. Dividing by sqrt(lr_peak/wd) instead is biased under a decay."""
    from lwscale.reports.diagnose import half_exponent, width_exponent
    from lwscale.reports.diagnose_points import steady

    pts, _ = synthetic_points(RULES[grid], schedule)
    qual = steady(pts)
    alpha = width_exponent(qual)
    pooled = alpha["pooled"]
    assert pooled.value == pytest.approx(0.75, abs=0.03) and pooled.lo <= 0.75 <= pooled.hi, pooled
    assert pooled.clusters == qual["cell_id"].nunique() and pooled.interval == "cluster bootstrap"
    for t in alpha:
        assert alpha[t].value == pytest.approx(0.75, abs=0.03), (t, alpha[t])
    betas = {w: s for w, s in half_exponent(qual).items() if np.isfinite(s.value)}
    assert len(betas) >= 3
    for w, s in betas.items():
        assert s.value == pytest.approx(0.5, abs=0.03), (w, s)


def test_peak_lr_normalisation_is_biased_by_a_cosine_decay():
    """The old fit, log(sigma / sqrt(lr_peak/wd)) on log d, on the same const-wd cosine cells:
    the wide cells complete fewer timescales and end nearer the peak's equilibrium, so alpha
    comes out high; the schedule-aware fit does not."""
    from lwscale.reports.diagnose import width_exponent
    from lwscale.reports.diagnose_points import steady, unique_cells

    pts, _ = synthetic_points(["const-wd"], "cosine")
    p = unique_cells(steady(pts))
    old = slope(np.log(p["width"]), np.log(p["sigma"] / np.sqrt(p["lr_group"] / p["wd_group"])), p["type"])
    assert old.value - 0.75 > 0.04
    assert width_exponent(steady(pts))["pooled"].value == pytest.approx(0.75, abs=0.015)


def test_planted_beta_other_than_a_half_comes_back():
    from lwscale.reports.diagnose import half_exponent
    from lwscale.reports.diagnose_points import steady

    pts, _ = synthetic_points(RULES["three"], "cosine", beta=0.4)
    for w, s in half_exponent(steady(pts)).items():
        assert s.value == pytest.approx(0.4, abs=0.03), (w, s)
