"""The public library API on plain nn.Modules: groups, reports, muP, and every clear error."""

import pickle

import pytest
import torch
import torch.nn as nn

import lwscale
from lwscale.api import APIError
from lwscale.core.errors import UserError


class MLP(nn.Module):
    """emb [V, d] -> fc [2d, d] -> fc2 [d, 2d] -> LayerNorm -> head [V, d]."""

    def __init__(self, d: int, V: int = 50, fixed_std: float | None = None):
        super().__init__()
        self.emb = nn.Embedding(V, d)
        self.fc, self.fc2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, V, bias=False)
        if fixed_std is not None:  # a "constant std" init, as many LMs use: not muP
            for p in (self.fc.weight, self.fc2.weight, self.head.weight):
                nn.init.normal_(p, 0.0, fixed_std)

    def forward(self, x):
        return self.head(self.ln(self.fc2(torch.relu(self.fc(self.emb(x))))))


def pair(d=64, d0=16, **kw):
    torch.manual_seed(0)
    return MLP(d, **kw), MLP(d0, **kw)


def test_param_groups_give_the_rule_per_class_and_a_report():
    model, base = pair()
    groups = lwscale.param_groups(model, base, rule="sqrt-wd", eta=1e-2, wd=0.1)
    by = {g["name"]: g for g in groups}
    assert set(by) == {"vector", "matrix(m=4)"}
    assert by["matrix(m=4)"]["lr"] == pytest.approx(1e-2 / 4)
    assert by["matrix(m=4)"]["weight_decay"] == pytest.approx(0.1 * 2)  # lam * sqrt(m)
    assert by["vector"]["lr"] == pytest.approx(1e-2) and by["vector"]["weight_decay"] == 0.0
    assert sorted(by["matrix(m=4)"]["param_names"]) == ["fc.weight", "fc2.weight"]
    assert "head.weight  vector" in groups.report and "fc.weight    matrix  4" in groups.report
    # torch takes them as they are, and one AdamW step applies exactly lr*wd decay to matrices
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.95))
    w0 = model.fc.weight.detach().clone()
    model.fc.weight.grad = torch.zeros_like(w0)
    opt.step()
    assert torch.allclose(model.fc.weight, w0 * (1 - 1e-2 / 4 * 0.2))


@pytest.mark.parametrize("rule,g", [("const-wd", 0.0), ("linear-wd", 1.0), ("sp", None)])
def test_other_rules_and_overrides(rule, g):
    model, base = pair()
    groups = lwscale.param_groups(model, base, rule=rule, eta=1e-2, wd=0.1, overrides={"head.weight": "matrix"})
    mat = {n: gr for gr in groups for n in gr["param_names"]}
    if g is None:  # sp: no width scaling at all
        assert mat["fc.weight"]["lr"] == pytest.approx(1e-2) and mat["fc.weight"]["weight_decay"] == pytest.approx(0.1)
    else:
        assert mat["fc.weight"]["weight_decay"] == pytest.approx(0.1 * 4**g)
    assert mat["head.weight"]["weight_decay"] > 0 and "(override)" in groups.report


def test_scale_function_on_plain_numbers_and_presets():
    assert lwscale.scale_hparams(1e-3, 0.1, 4) == pytest.approx((2.5e-4, 0.2))
    assert lwscale.scale_hparams(1e-3, 0.1, 4, "linear-wd") == pytest.approx((2.5e-4, 0.4))
    assert lwscale.scale_hparams(1e-3, 0.1, 4, cls="vector") == (1e-3, 0.0)
    # independent mode: the same physical decay, so the returned (coupled) wd is the same
    assert lwscale.scale_hparams(1e-3, 1e-4, 4, wd_mode="independent")[1] == pytest.approx(0.1 * 2)
    assert set(lwscale.PRESETS) == {"sqrt-wd", "const-wd", "linear-wd", "sp"}
    assert lwscale.get_rule("custom(a=1,g=0.25)").g == 0.25


def test_error_shape_change_no_class_explains():
    model, base = pair()
    model.extra = nn.Parameter(torch.zeros(64, 64, 64))
    base.extra = nn.Parameter(torch.zeros(16, 16, 16))
    with pytest.raises(APIError, match=r"extra: 3 dims change with width") as exc:
        lwscale.param_groups(model, base)
    assert isinstance(exc.value, UserError) and "\n" not in str(exc.value)
    base.extra = nn.Parameter(torch.zeros(16, 16))
    with pytest.raises(APIError, match="extra: rank changes with width"):
        lwscale.param_groups(model, base)


def test_error_parameter_missing_in_one_model():
    model, base = pair()
    model.gate = nn.Parameter(torch.ones(64))
    with pytest.raises(APIError, match=r"missing in one of the two models: gate \(not in the base model\)"):
        lwscale.param_groups(model, base)
    with pytest.raises(APIError, match=r"gate \(not in the model\)"):
        lwscale.param_groups(base, model)


def test_error_same_width_needs_a_probe():
    model, base = pair(d=16)
    with pytest.raises(APIError, match="pass probe="):
        lwscale.param_groups(model, base)
    groups = lwscale.param_groups(model, base, probe=MLP(32), wd=0.1)
    mat = {n: g for g in groups for n in g["param_names"]}
    assert mat["fc.weight"]["weight_decay"] == pytest.approx(0.1) and mat["fc.bias"]["weight_decay"] == 0.0


def test_error_weight_decay_applied_twice():
    model, base = pair()
    groups = lwscale.param_groups(model, base, eta=1e-2, wd=0.1)
    # the same parameters decayed by a second optimizer
    other = torch.optim.AdamW([model.fc.weight], lr=1e-3, weight_decay=0.01)
    with pytest.raises(
        APIError,
        match=r"weight decay applied twice: fc.weight is decayed by optimizer 0 group \d "
        r"\(wd 0.2\) and by optimizer 1 group 0 \(wd 0.01\)",
    ):
        lwscale.check_optimizer(groups, torch.optim.AdamW(groups), other)
    # lwscale's groups rescaled again (what mup's MuAdamW does to matrix wd): x4 at m = 4
    doubled = [
        dict(g, weight_decay=g["weight_decay"] * 4 if g["name"].startswith("matrix") else 0.0, lr=g["lr"])
        for g in groups
    ]
    with pytest.raises(APIError, match=r"weight decay of fc.*is 0.8, but the rule gives 0.2 \(x4: scaled twice"):
        lwscale.check_optimizer(groups, torch.optim.AdamW(doubled))
    # vector parameters decayed by a global weight_decay
    flat = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    with pytest.raises(APIError, match="weight decay of"):
        lwscale.check_optimizer(groups, flat)
    lwscale.check_optimizer(groups, torch.optim.AdamW(groups))  # the right way passes


def test_apply_mup_and_check_mup():
    model, base = pair(fixed_std=0.02)
    problems = lwscale.check_mup(model, base)
    assert any("readout 'head' has no 1/m output multiplier (m = 4)" in p for p in problems)
    assert any(p.startswith("hidden init not rescaled: fc.weight") for p in problems)
    assert any(p.startswith("hidden init not rescaled: fc2.weight") for p in problems)
    x = torch.randint(0, 50, (2, 5))
    before = model(x)
    lwscale.apply_mup(model, base, readout="head")
    assert lwscale.check_mup(model, base) == []
    # hidden stds now the base's x m^-1/2 (m = 64/16 for fc, 128/32 for fc2); readout kept as the base's
    assert model.fc.weight.std().item() == pytest.approx(base.fc.weight.std().item() / 2, rel=1e-5)
    assert model.fc2.weight.std().item() == pytest.approx(base.fc2.weight.std().item() / 2, rel=1e-5)
    assert model.head.weight.std().item() == pytest.approx(base.head.weight.std().item(), rel=1e-5)
    # the readout multiplier survives pickling (torch.save)
    clone = pickle.loads(pickle.dumps(model))
    assert torch.allclose(clone(x), model(x)) and not torch.allclose(before, model(x))
    with pytest.raises(APIError, match="already applied"):
        lwscale.apply_mup(model, base, readout="head")
    with pytest.raises(APIError, match="readout='nope': the model has no such module"):
        lwscale.apply_mup(*pair(), readout="nope")


def test_apply_mup_at_base_width_changes_nothing():
    torch.manual_seed(1)
    model = MLP(16)
    torch.manual_seed(1)
    twin = MLP(16)
    x = torch.randint(0, 50, (2, 5))
    lwscale.apply_mup(model, twin, readout="head")
    assert torch.equal(model(x), twin(x))  # muP = SP bit for bit at m = 1


def test_check_mup_flags_a_wrong_multiplier():
    model, base = pair()
    lwscale.apply_mup(model, base, readout="head")
    model.head.lwscale_readout_mult = 0.5
    assert lwscale.check_mup(model, base) == ["readout 'head' multiplies its output by 0.5, but muP needs 1/m = 0.25"]
    assert len(lwscale.check_mup(model, base, readout="head")) == 1


def test_check_mup_expects_exactly_the_init_apply_mup_gives():
    model, base = pair(fixed_std=0.02)
    lwscale.apply_mup(model, base, readout="head")
    with torch.no_grad():
        model.emb.weight.mul_(3.0)  # vector-like: muP sets no init scale, so nothing to flag
        model.fc.weight.mul_(1.3)  # beyond the 1.25x tolerance either way
        model.head.weight.mul_(0.5)
    fc_want, head_want = base.fc.weight.std().item() / 2, base.head.weight.std().item()
    assert lwscale.check_mup(model, base) == [
        f"hidden init not rescaled: fc.weight has init std {model.fc.weight.std().item():.3g} at m = 4, "
        f"expected {fc_want:.3g} (the base std {base.fc.weight.std().item():.3g} x m^-1/2); call lwscale.apply_mup",
        f"readout init not rescaled: head.weight has init std {model.head.weight.std().item():.3g} at m = 4, "
        f"expected {head_want:.3g} (the base std (muP keeps the readout's init constant)); call lwscale.apply_mup",
    ]
    with torch.no_grad():
        model.fc.weight.div_(1.2)  # back within tolerance of m^-1/2
    assert len(lwscale.check_mup(model, base)) == 1


def test_lwscale_exports_exactly_the_api():
    """`lwscale._API` copies `api.__all__` so that `import lwscale` needs no torch (the lazy
    import itself: tests/runners/test_stacking.py); the copy must not drift from the original."""
    from lwscale import api

    assert lwscale._API == tuple(api.__all__)
    assert lwscale.__all__ == ["__version__", *api.__all__]
    assert all(getattr(lwscale, name) is getattr(api, name) for name in api.__all__)
    with pytest.raises(AttributeError, match="no attribute 'scale'"):
        lwscale.scale  # noqa: B018 (the attribute access is what raises)


def test_library_import_shortens_openmp_spinning_before_torch_loads():
    """Not only the CLI: a script that imports lwscale.api (and then torch) gets GOMP_SPINCOUNT
    too, set before torch loads libgomp (docs/performance.md)."""
    import os
    import subprocess
    import sys

    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    code = (
        "import os, sys; import lwscale; assert 'torch' not in sys.modules; "
        "spin = os.environ.get('GOMP_SPINCOUNT'); import lwscale.api; print(spin)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = src
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "10000"
