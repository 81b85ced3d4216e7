"""The shared least-squares slope and its Student-t quantile, against known values."""
import math

import numpy as np
import pytest

from lwscale.reports.fits import slope, t975


@pytest.mark.parametrize("dof,t", [(1, 12.706), (2, 4.303), (3, 3.182), (10, 2.228), (29, 2.045), (30, 2.042)])
def test_t975_table_values(dof, t):
    assert t975(dof) == t


@pytest.mark.parametrize("dof,t", [(31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799), (1000, 1.9623),
                                   (10**6, 1.9600)])
def test_t975_beyond_the_table(dof, t):
    assert t975(dof) == pytest.approx(t, abs=1e-4)


def test_t975_is_continuous_and_decreasing_past_the_table():
    ts = [t975(d) for d in range(25, 200)]
    assert all(a > b for a, b in zip(ts, ts[1:]))
    assert 0 < t975(30) - t975(31) < 0.004   # no jump where the table hands over to the series
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
