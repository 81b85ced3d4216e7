"""Every shipped config parses and plans: a config a user copies must never be stale."""

from pathlib import Path

import pytest

from lwscale.sweep.plan import make_plan
from lwscale.sweep.spec import load_spec

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_the_configs_are_found():
    assert {"quickstart.yaml", "study.yaml", "study-cpu.yaml", "figure1.yaml"} <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses_and_plans(path):
    spec = load_spec(path)
    plan = make_plan(spec)
    assert plan.cells and len(plan.labels) >= len(plan.cells)
