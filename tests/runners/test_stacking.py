"""Automatic choice of K (cells per stack) and the cut into stacks."""

import torch
from conftest import TINY_SPEC

from lwscale.runners.local import make_stacks
from lwscale.runners.stacking import choose_k, k_for_memory, k_for_speed
from lwscale.sweep.plan import make_plan
from lwscale.sweep.spec import parse_spec

SPEC = parse_spec(TINY_SPEC)
CFG = make_plan(SPEC).cells[0].model


def test_cpu_k_is_never_slower_than_one_by_one():
    # stacking 4 is 30% faster per cell: take it
    assert k_for_speed(CFG, SPEC, torch.device("cpu"), 4, time_fn=lambda k: {1: 1.0, 2: 1.8, 4: 2.8}[k]) == 4
    # only 3% faster: not worth the risk of being slower; 1 by 1
    assert k_for_speed(CFG, SPEC, torch.device("cpu"), 4, time_fn=lambda k: {1: 1.0, 2: 1.94, 4: 3.9}[k]) == 1
    # slower stacked: 1 by 1
    assert k_for_speed(CFG, SPEC, torch.device("cpu"), 8, time_fn=lambda k: k * 1.2) == 1
    assert k_for_speed(CFG, SPEC, torch.device("cpu"), 1, time_fn=lambda k: 1 / 0) == 1


def test_cpu_k_search_stops_once_stacking_gets_slower():
    timed = []

    def time_fn(k):
        timed.append(k)
        return {1: 1.0, 2: 2.4, 4: 4.0, 8: 6.0}[k]

    # K = 2 is slower per cell than one by one: the costly K = 4 and 8 are never timed
    assert k_for_speed(CFG, SPEC, torch.device("cpu"), 8, time_fn=time_fn) == 1
    assert timed == [1, 2, 1]


def test_cpu_k_from_a_real_timing():
    k = choose_k(SPEC, make_plan(SPEC).cells, torch.device("cpu"))
    assert set(k) == {32, 64} and all(1 <= v <= 8 for v in k.values())


def test_cuda_k_fills_85_percent_of_free_memory():
    GiB = 2**30
    # 1 GiB fixed + 0.5 GiB per cell; 16 GiB free -> (0.85*16 - 1) / 0.5 = 25
    measure = lambda k: GiB + k * GiB // 2  # noqa: E731
    assert k_for_memory(CFG, SPEC, None, 100, measure=measure, free=16 * GiB) == 25
    assert k_for_memory(CFG, SPEC, None, 9, measure=measure, free=16 * GiB) == 9  # capped by the cells
    assert k_for_memory(CFG, SPEC, None, 9, measure=measure, free=GiB) == 1  # always at least one


def test_spec_override_and_stacks_per_width():
    spec = parse_spec({**TINY_SPEC, "train": {**TINY_SPEC["train"], "cells_per_stack": 3}})
    cells = make_plan(spec).cells
    assert choose_k(spec, cells, torch.device("cpu")) == {32: 3, 64: 3}
    stacks = make_stacks(cells, {32: 8, 64: 5})
    assert sorted(len(s) for s in stacks) == [4, 4, 4, 4, 8]  # 8 cells at 32; 16 at 64 in balanced stacks
    for s in stacks:
        assert len({c.stack_key() for c in s}) == 1
    assert sorted(c.id for s in stacks for c in s) == sorted(c.id for c in cells)


def test_cli_shortens_openmp_spinning_unless_the_user_says_otherwise():
    """libgomp's long spin made small CPU steps ~100x slower on a busy machine."""
    import os
    import subprocess
    import sys

    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    code = "import lwscale.cli, os, sys; assert 'torch' not in sys.modules; print(os.environ.get('GOMP_SPINCOUNT'))"
    cases = (({}, "10000"), ({"GOMP_SPINCOUNT": "500"}, "500"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "None"))
    for given, expect in cases:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        env.update(given, PYTHONPATH=src)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expect, given
