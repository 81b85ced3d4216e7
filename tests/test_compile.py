"""The compiled path on the CPU: dynamo traces the stacked model and the stacked AdamW update
without graph breaks, once per (width, K) and mode, and never again within a stack.

The GPU box runs the same path with inductor (tests/test_gpu.py); here dynamo's counting
backend stands in for inductor, so the test checks tracing and guards in seconds.
"""
import functools

import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter
from torch._dynamo.utils import counters

from conftest import TINY_SPEC
from lwscale.runners.local import run_sweep
from lwscale.spec import parse_spec


@pytest.fixture
def compile_counter(monkeypatch):
    torch._dynamo.reset()
    counters.clear()
    cnt = CompileCounter()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=cnt))
    yield cnt
    torch._dynamo.reset()


def test_sweep_compiles_once_per_width_and_mode(tmp_path, compile_counter):
    train = {**TINY_SPEC["train"], "seeds": [0], "compile": True, "cells_per_stack": 2}
    spec = parse_spec({**TINY_SPEC, "rules": ["sqrt-wd"], "train": train})
    table = run_sweep(spec, out_dir=tmp_path).table
    assert set(table["status"]) == {"done"}
    widths = len(spec.model.widths)
    stacks = table.drop_duplicates("cell_id").shape[0] // 2
    assert stacks == 2 * widths  # two stacks per width: the second must reuse the first's graphs
    # per width: the model's training graph, its no-grad eval graph and the optimizer update
    assert compile_counter.frame_count == 3 * widths
    assert not counters["graph_break"], dict(counters["graph_break"])
