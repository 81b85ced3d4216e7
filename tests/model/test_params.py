"""Shape inference of parameter classes, for the built-in model and for plain nn.Modules."""

import pytest
import torch.nn as nn
from conftest import tiny_cfg

from lwscale.model.classes import group_keys, report
from lwscale.model.config import matrix_type
from lwscale.model.params import ShapeError, classify, classify_model
from lwscale.model.transformer import Transformer

VECTORS = {"embed", "unembed", "norm.weight"}


@pytest.mark.parametrize("width", [32, 64, 128, 256])
def test_builtin_model_classes(width):
    model = Transformer(tiny_cfg(width, n_stack=2))
    infos = classify_model(model)
    assert len(infos) == len(list(model.parameters()))
    for i in infos:
        if matrix_type(i.name):
            assert i.cls == "matrix", i
            assert i.width_mult == pytest.approx(width / 32), i  # its own fan-in ratio
        else:
            assert i.cls == "vector", i
            assert i.name in VECTORS or i.name.endswith("norm.weight")
            assert i.width_mult == 1.0
    assert sum(i.cls == "matrix" for i in infos) == 2 * 7


def test_unembed_can_be_classed_as_matrix():
    model = Transformer(tiny_cfg(128, unembed_class="matrix"))
    infos = {i.name: i for i in classify_model(model)}  # the model's own class
    assert infos["unembed"].cls == "matrix" and infos["unembed"].overridden
    assert infos["unembed"].width_mult == pytest.approx(4.0)  # fan-in d / d0
    assert "override" in report(infos.values())
    assert classify_model(model, "matrix") == list(infos.values())
    # the optimizer's class must be the model's: its readout multiplier and init follow it
    with pytest.raises(ValueError, match="differs"):
        classify_model(model, unembed_class="vector")
    with pytest.raises(ValueError, match="differs"):
        classify_model(Transformer(tiny_cfg(128)), unembed_class="matrix")


def test_sp_model_has_unit_multipliers():
    from lwscale.model.config import parametrization

    infos = classify_model(Transformer(parametrization(tiny_cfg(128), mup=False)))
    assert {i.width_mult for i in infos} == {1.0}
    assert sum(i.cls == "matrix" for i in infos) == 14  # classes still found via the probe


class MLP(nn.Module):
    def __init__(self, d, extra=None):
        super().__init__()
        self.inp = nn.Linear(10, d)  # vector-like: only fan-out grows
        self.hid = nn.Linear(d, 2 * d)  # matrix-like, fan-in ratio m
        self.out = nn.Linear(2 * d, 3)  # vector-like readout
        if extra is not None:
            self.extra = extra


def test_plain_module_classes_and_fan_in():
    infos = {i.name: i for i in classify(MLP(64), MLP(16))}
    assert infos["hid.weight"].cls == "matrix" and infos["hid.weight"].width_mult == 4.0
    for n in ("inp.weight", "inp.bias", "hid.bias", "out.weight", "out.bias"):
        assert infos[n].cls == "vector", n
    keys = group_keys(infos.values())
    assert sorted(k.label() for k in keys) == ["matrix(m=4)", "vector"]


def test_refuses_unexplained_shapes():
    import torch

    class Cube(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(d, d, d))

    with pytest.raises(ShapeError, match="3 dims change"):
        classify(Cube(8), Cube(4))

    class Rank(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.w = nn.Parameter(torch.zeros([d] * (1 if d < 8 else 2)))

    with pytest.raises(ShapeError, match="rank changes"):
        classify(Rank(8), Rank(4))


def test_refuses_missing_parameter():
    with pytest.raises(ShapeError, match="missing"):
        classify(MLP(32, extra=nn.Linear(2, 2)), MLP(16))


def test_overrides_validate():
    with pytest.raises(ShapeError):
        classify(MLP(32), MLP(16), overrides={"out.weight": "tensor"})
    infos = {i.name: i for i in classify(MLP(32), MLP(16), overrides={"out.*": "matrix"})}
    assert infos["out.weight"].cls == "matrix" and infos["out.weight"].width_mult == 2.0
