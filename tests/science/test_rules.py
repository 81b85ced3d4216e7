"""Every cell of docs/science.md §2's rule table, at m = 1, 2, 8, in both wd modes."""

import math

import pytest

from lwscale.science import rules
from lwscale.science.rules import class_hparams, coupled_wd, get_rule

ETA, LAM = 3e-3, 0.1
# rule -> (matrix lr exponent, matrix coupled-wd exponent, per-step-decay exponent)
TABLE = {
    "sqrt-wd": (-1.0, 0.5, -0.5),
    "const-wd": (-1.0, 0.0, -1.0),
    "linear-wd": (-1.0, 1.0, 0.0),
    "sp": (0.0, 0.0, 0.0),
}


@pytest.mark.parametrize("m", [1, 2, 8])
@pytest.mark.parametrize("name", list(TABLE))
def test_coupled_table(name, m):
    lr_exp, wd_exp, decay_exp = TABLE[name]
    lr, wd = class_hparams(name, ETA, LAM, m, "matrix", "coupled")
    assert lr == pytest.approx(ETA * m**lr_exp, rel=1e-12)
    assert wd == pytest.approx(LAM * m**wd_exp, rel=1e-12)
    assert lr * wd == pytest.approx(ETA * LAM * m**decay_exp, rel=1e-12)
    # vector-like: lr = eta, wd = 0, whatever the rule and width
    assert class_hparams(name, ETA, LAM, m, "vector", "coupled") == (ETA, 0.0)


@pytest.mark.parametrize("m", [1, 2, 8])
@pytest.mark.parametrize("name", list(TABLE))
def test_independent_mode_keeps_physical_decay(name, m):
    """In independent mode the user's lambda is the per-step decay lr_peak*wd; a preset
    means the same physical decay in both modes (sqrt-wd: lam_ind ~ m^-1/2)."""
    lr_exp, _, decay_exp = TABLE[name]
    lam_ind = ETA * LAM  # the same base physical decay, written in independent units
    lr, wd_ind = class_hparams(name, ETA, lam_ind, m, "matrix", "independent")
    assert lr == pytest.approx(ETA * m**lr_exp, rel=1e-12)
    assert wd_ind == pytest.approx(lam_ind * m**decay_exp, rel=1e-12)
    lr_c, wd_c = class_hparams(name, ETA, LAM, m, "matrix", "coupled")
    assert lr * coupled_wd(lr, wd_ind, "independent") == pytest.approx(lr_c * wd_c, rel=1e-12)
    assert class_hparams(name, ETA, lam_ind, m, "vector", "independent") == (ETA, 0.0)


def test_sqrt_wd_independent_scales_as_inverse_sqrt():
    _, w1 = class_hparams("sqrt-wd", ETA, 1e-4, 1, "matrix", "independent")
    _, w4 = class_hparams("sqrt-wd", ETA, 1e-4, 4, "matrix", "independent")
    assert w4 / w1 == pytest.approx(0.5)


def test_custom_rule_and_labels():
    r = rules.custom(1.0, 0.25)
    lr, wd = class_hparams(r, ETA, LAM, 16, "matrix")
    assert lr == pytest.approx(ETA / 16) and wd == pytest.approx(LAM * 2)
    assert get_rule(r.label()) == r
    assert get_rule("sqrt-wd") is rules.PRESETS["sqrt-wd"]
    assert not get_rule("sp").mup and get_rule("const-wd").mup


def test_vector_lr_multiplier():
    assert class_hparams("sqrt-wd", ETA, LAM, 4, "vector", vector_lr_mult=0.5) == (ETA * 0.5, 0.0)


@pytest.mark.parametrize("bad", ["sqrt", "custom(a=1)", "", "custom(x)"])
def test_unknown_rule_is_a_clear_error(bad):
    with pytest.raises(rules.RuleError):
        get_rule(bad)


def test_bad_numbers():
    with pytest.raises(rules.RuleError):
        class_hparams("sqrt-wd", ETA, LAM, 0, "matrix")
    with pytest.raises(rules.RuleError):
        class_hparams("sqrt-wd", ETA, LAM, 2, "matrix", "bogus")
    with pytest.raises(rules.RuleError):
        rules.custom(math.nan, 0)


def test_timescale():
    assert rules.timescale(1e-3, 0.1) == pytest.approx(1e4)
    assert rules.timescale(1e-3, 0.0) == math.inf
