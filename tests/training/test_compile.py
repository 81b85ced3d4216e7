"""The compiled path on the CPU: dynamo traces the stacked model and the stacked AdamW update
without graph breaks, once per (width, K) and mode, and never again within a stack.

The GPU box runs the same path with inductor (tests/training/test_gpu.py). Here dynamo's counting
backend stands in for inductor in the sweep-level test (tracing and guards in seconds), and
one tiny stack runs through inductor itself, which builds C++ kernels on the CPU: the same
tracing, autograd and fusion as on the GPU, checked against eager. Its cold compile takes
about a minute of CPU; inductor's on-disk cache makes a rerun take seconds.
"""

import functools

import pytest
import torch
import torch._dynamo
import torch._inductor.config
from conftest import TINY_SPEC
from torch._dynamo.testing import CompileCounter
from torch._dynamo.utils import counters

from lwscale.runners.local import run_sweep
from lwscale.sweep.spec import parse_spec


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


# ---- a real compile: inductor generates and builds C++ on the CPU -------------------------------
def _inductor_unavailable() -> str | None:
    """Why inductor cannot build CPU kernels here, or None if it can."""
    import shutil

    if not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return "no C++ compiler (g++/c++/clang++) on PATH: inductor cannot build CPU kernels"
    return None


def _train_tiny_stack(compile_: bool, monkeypatch, on_progress=None) -> list[dict]:
    """Two cells (K = 2) of width 32, depth 1, trained for 6 steps through the sweep's own
    path (``train.train_stack``: ``train.compile`` compiles the model and the AdamW update as
    a sweep does). Cell 1's loss is made NaN at step 4, so its health mask flips mid-stack;
    the lr changes every step (warmup, then cosine); evaluations at steps 0, 3 and 6."""
    from lwscale.data.load import load_dataset
    from lwscale.sweep.plan import make_plan
    from lwscale.training.loop import train_stack

    monkeypatch.setenv("LWSCALE_FAULT", "nan:step=4:cell=1")
    train = {
        **TINY_SPEC["train"],
        "steps": 6,
        "warmup": 2,
        "eval_interval": 3,
        "log_interval": 1,
        "eval_tokens": 512,
        "seeds": [0],
        "compile": compile_,
        "device": "cpu",
    }
    spec = parse_spec(
        {
            **TINY_SPEC,
            "model": {**TINY_SPEC["model"], "widths": [32]},
            "rules": ["sqrt-wd"],
            "grid": {"eta": [2**-7, 2**-5], "wd": [0.1]},
            "train": train,
        }
    )
    cells = make_plan(spec).cells
    assert len(cells) == 2
    m = spec.model
    data = load_dataset(
        spec.data,
        m.seq_len,
        train["batch_size"],
        train["eval_tokens"],
        torch.device("cpu"),
        max_width=32,
        depth=m.depth,
        head_dim=m.head_dim,
    )
    data.prepare([0], train["steps"])
    torch.manual_seed(0)
    return train_stack(cells, spec, data, torch.device("cpu"), on_progress=on_progress)


def test_inductor_on_cpu_equals_eager_and_never_recompiles(monkeypatch):
    """torch.compile's default backend (inductor, C++ on the CPU) on the stacked model and the
    StackedAdamW update gives eager's losses (fp32, rtol and atol 1e-4 over 6 steps), and
    after the first step nothing recompiles (error_on_recompile) while the lr, the health
    mask (a cell frozen at step 4) and the step change, and evaluations run."""
    why = _inductor_unavailable()
    if why:
        pytest.skip(why)
    eager = _train_tiny_stack(False, monkeypatch)

    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", False)

    def after_warmup(done, steps, losses):  # graphs exist after step 1: eval (step 0), train, update
        torch._dynamo.config.error_on_recompile = True

    # one compile thread: no worker pool on 2 cores. (Turning off SIMD codegen would save about 20 s
    # of CPU, but inductor caches its C++ prefix header for the process, and a later compile with
    # SIMD on then fails to build: tests/training/test_optim.py's compiled update did.)
    try:
        with torch._inductor.config.patch({"compile_threads": 1}):
            compiled = _train_tiny_stack(True, monkeypatch, on_progress=after_warmup)
    finally:
        torch._dynamo.config.error_on_recompile = False
        torch._dynamo.reset()
    # the model's training graph, its no-grad eval graph and the optimizer update; no more
    assert counters["stats"]["unique_graphs"] == 3, dict(counters["stats"])
    assert not counters["graph_break"], dict(counters["graph_break"])

    assert [r.status for r in compiled] == [r.status for r in eager] == ["done", "diverged"]
    assert compiled[1].diverged_step == eager[1].diverged_step is not None
    for c, e in zip(compiled, eager):
        for kind in ("train", "val"):
            got, want = torch.tensor(c.curves[kind]), torch.tensor(e.curves[kind])
            assert got.shape == want.shape and len(got) > 0, kind
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=kind)
    assert compiled[0].final_val_loss == pytest.approx(eager[0].final_val_loss, rel=1e-4, abs=1e-4)
