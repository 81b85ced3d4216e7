"""Cross-check against microsoft/mup 1.0.0: one model, both libraries, the same numbers.

mup's ``MuAdamW`` divides a matrix-like parameter's lr by its fan-in ratio m and multiplies
its weight decay by m (so lr*wd stays flat): that is lwscale's ``linear-wd``. It keeps the
base weight decay on vector-like parameters, where lwscale's rules use 0, so the mup side
runs with those set to 0. ``sqrt-wd`` differs exactly by matrix wd / sqrt(m).
CI installs mup (``.ci/run``) and sets LWSCALE_REQUIRE_MUP=1, so there this never skips.
"""

import math
import os

import pytest
import torch
import torch.nn as nn

import lwscale

try:
    import mup
except ImportError:  # pragma: no cover - only without mup
    if os.environ.get("LWSCALE_REQUIRE_MUP"):
        raise
    pytest.skip("microsoft/mup is not installed (pip install --no-deps mup==1.0.0)", allow_module_level=True)

ETA, LAM = 1e-2, 0.1


class Net(nn.Module):
    """Embedding, two hidden matrices of different fan-in, a norm, a bias and a readout."""

    def __init__(self, d: int, V: int = 40, readout=nn.Linear):
        super().__init__()
        self.emb = nn.Embedding(V, d)
        self.up = nn.Linear(d, 3 * d)
        self.down = nn.Linear(3 * d, d, bias=False)
        self.ln = nn.LayerNorm(d)
        self.head = readout(d, V, bias=False)

    def forward(self, x):
        return self.head(self.ln(self.down(torch.relu(self.up(self.emb(x))))))


def per_param(groups, names: dict[int, str]) -> dict[str, tuple[float, float]]:
    return {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


@pytest.fixture(scope="module")
def both():
    torch.manual_seed(0)
    model, base = Net(64, readout=mup.MuReadout), Net(16, readout=mup.MuReadout)
    mup.set_base_shapes(model, base)
    names = {id(p): n for n, p in model.named_parameters()}
    ours = {
        rule: per_param(lwscale.param_groups(model, base, rule=rule, eta=ETA, wd=LAM), names)
        for rule in ("linear-wd", "sqrt-wd")
    }
    # mup: matrices get the base lam (MuAdamW scales it); vector-like get 0, as in lwscale's rules
    vector = [p for p in model.parameters() if p.infshape.ninf() < 2]
    matrix = [p for p in model.parameters() if p.infshape.ninf() == 2]
    theirs = per_param(
        mup.MuAdamW(
            [{"params": matrix, "weight_decay": LAM}, {"params": vector, "weight_decay": 0.0}], lr=ETA
        ).param_groups,
        names,
    )
    plain = per_param(mup.MuAdamW(model.parameters(), lr=ETA, weight_decay=LAM).param_groups, names)
    return model, ours, theirs, plain


def test_same_classes_as_mup(both):
    model, ours, _, _ = both
    lw_classes = {i.name: i.cls for i in lwscale.classify_params(model, Net(16, readout=mup.MuReadout))}
    mup_classes = {n: "matrix" if p.infshape.ninf() == 2 else "vector" for n, p in model.named_parameters()}
    assert lw_classes == mup_classes
    assert [n for n, c in lw_classes.items() if c == "matrix"] == ["up.weight", "down.weight"]


def test_linear_wd_equals_mu_adamw_per_parameter(both):
    _, ours, theirs, _ = both
    assert set(ours["linear-wd"]) == set(theirs)
    for name, (lr, wd) in theirs.items():
        our_lr, our_wd = ours["linear-wd"][name]
        assert our_lr == pytest.approx(lr, rel=1e-12), name
        assert our_lr * our_wd == pytest.approx(lr * wd, rel=1e-12), name
    # and the numbers are the rule's: m = 4 (up: 64/16) and m = 4 (down: 192/48)
    assert theirs["up.weight"] == pytest.approx((ETA / 4, LAM * 4))


def test_mu_adamw_keeps_wd_on_vector_params_lwscale_does_not(both):
    _, ours, _, plain = both
    for name in ("emb.weight", "up.bias", "ln.weight", "ln.bias", "head.weight"):
        assert plain[name] == pytest.approx((ETA, LAM))  # mup's documented behaviour
        assert ours["linear-wd"][name] == pytest.approx((ETA, 0.0))


def test_sqrt_wd_differs_from_mu_adamw_by_sqrt_m_on_matrix_wd_only(both):
    _, ours, theirs, _ = both
    for name, (lr, wd) in theirs.items():
        s_lr, s_wd = ours["sqrt-wd"][name]
        assert s_lr == pytest.approx(lr, rel=1e-12)  # the same muP learning rates
        if name in ("up.weight", "down.weight"):
            m = 4.0
            assert wd / s_wd == pytest.approx(math.sqrt(m), rel=1e-12)  # wd ratio = sqrt(m)
            assert s_lr * s_wd == pytest.approx(ETA * LAM / math.sqrt(m), rel=1e-12)
        else:
            assert s_wd == wd == 0.0


def test_apply_mup_readout_matches_mu_readout():
    """Our readout multiplier gives mup's MuReadout logits on the same weights."""
    torch.manual_seed(0)
    ref, ref_base = Net(64, readout=mup.MuReadout), Net(16, readout=mup.MuReadout)
    mup.set_base_shapes(ref, ref_base, rescale_params=False)
    ours, ours_base = Net(64), Net(16)
    ours.load_state_dict(ref.state_dict())
    ours_base.load_state_dict(ref_base.state_dict())
    lwscale.apply_mup(ours, ours_base, readout="head")
    ours.load_state_dict(ref.state_dict())  # compare the multiplier alone, on identical weights
    x = torch.randint(0, 40, (2, 7))
    assert torch.allclose(ours(x), ref(x), rtol=1e-6, atol=1e-7)
