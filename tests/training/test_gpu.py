"""CUDA-only checks of the fast path: skipped without a GPU (CI has none).

Run on a GPU box with ``python -m pytest -m gpu tests/training/test_gpu.py``; benchmarks/gpu_check.sh
runs them together with the benchmarks.
"""

import pytest
import torch
from conftest import TINY_SPEC, tiny_cfg

from lwscale.model.params import classify_model, stack_groups
from lwscale.model.transformer import build
from lwscale.training.optim import StackedAdamW

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

CELLS = [("sqrt-wd", 2e-2, 0.3), ("const-wd", 5e-3, 0.05), ("linear-wd", 1e-2, 1.0), ("sp", 3e-2, 0.1)]


def _train(cells, tokens, compile_: bool):
    dev = torch.device("cuda")
    model = build(tiny_cfg(64, n_stack=len(cells)), seeds=[0] * len(cells), device=dev)
    opt = StackedAdamW(stack_groups(model, classify_model(model), cells), len(cells), max_grad_norm=1.0)
    fwd = model
    if compile_:
        fwd, opt = torch.compile(model), opt.compile()
    losses = []
    for idx in tokens:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(idx[..., :-1], idx[..., 1:]).float()
        loss.sum().backward()
        opt.step(healthy=torch.isfinite(loss))
        opt.zero_grad()
        losses.append(loss.detach())
    return torch.stack(losses).cpu()


def test_stacked_equals_single_in_bf16_compiled():
    """The stacked and single paths give the same losses within bf16 noise on the fast path."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 256, (1, 1, 8, 33), generator=g).expand(20, len(CELLS), 8, 33).cuda()
    stacked = _train(CELLS, tokens, compile_=True)
    for k, cell in enumerate(CELLS):
        single = _train([cell], tokens[:, k : k + 1], compile_=True)
        torch.testing.assert_close(stacked[:, k : k + 1], single, rtol=3e-2, atol=3e-2)
    assert (stacked[-1] < stacked[0]).all()


def test_sweep_on_cuda_records_mfu(tmp_path):
    """A tiny sweep through the real runner on CUDA (bf16, compile): every cell done, MFU recorded."""
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec({**TINY_SPEC, "train": {**TINY_SPEC["train"], "device": "cuda", "seeds": [0]}})
    table = run_sweep(spec, out_dir=tmp_path).table
    assert set(table["status"]) == {"done"}
    assert (table.drop_duplicates("cell_id")["mfu"] > 0).all()


def test_no_recompiles_during_a_stack():
    """One compile per (width, K): changing lr factors, step counts and health masks never
    trigger a recompile of the model or the optimizer update."""
    import torch._dynamo

    dev = torch.device("cuda")
    cells = CELLS[:2]
    model = build(tiny_cfg(64, n_stack=2), seeds=[0, 0], device=dev)
    opt = StackedAdamW(stack_groups(model, classify_model(model), cells), 2, max_grad_norm=1.0).compile()
    fwd = torch.compile(model)
    idx = torch.randint(0, 256, (2, 8, 33), device=dev)

    def step(scale):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(idx[..., :-1], idx[..., 1:]).float()
        loss.sum().backward()
        opt.step(scale, healthy=torch.isfinite(loss))
        opt.zero_grad()

    for s in (0.1, 0.2):
        step(s)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for s in (0.3, 0.7, 1.0, 0.5):
            step(s)


def test_training_step_never_waits_for_the_gpu():
    """No host sync in the step: batch upload, forward, backward and the stacked AdamW update
    (schedule factor and step count included) queue work without waiting for it."""
    import numpy as np

    from lwscale.training.loop import Batcher

    class Batches:  # the dataset interface Batcher reads: one [B, T+1] batch per (seed, step)
        def train_batch(self, seed, step):
            return np.random.default_rng(step).integers(0, 256, (8, 33))

    dev = torch.device("cuda")
    cells = CELLS[:2]
    model = build(tiny_cfg(64, n_stack=2), seeds=[0, 1], device=dev)
    opt = StackedAdamW(stack_groups(model, classify_model(model), cells), 2, max_grad_norm=1.0).compile()
    fwd = torch.compile(model)
    batcher = Batcher(Batches(), seeds=[0, 1], device=dev)

    def step(i):
        tokens = batcher.train(i)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(tokens[..., :-1], tokens[..., 1:]).float()
        loss.sum().backward()
        opt.step(0.5 + 0.1 * i, healthy=torch.isfinite(loss))
        opt.zero_grad()

    step(0)  # compile outside the check
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(1, 4):
            step(i)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()


def test_checkpoint_of_a_cuda_stack_resumes(tmp_path):
    """A checkpoint of a CUDA stack (CUDA tensors in the model, the optimizer state, the loop
    state and torch's RNG states) loads with weights_only=True onto the device and resumes."""
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec(
        {
            **TINY_SPEC,
            "model": {**TINY_SPEC["model"], "widths": [32]},
            "rules": ["sqrt-wd"],
            "grid": {"eta": [2**-6], "wd": [0.1]},
            "train": {**TINY_SPEC["train"], "device": "cuda", "seeds": [0], "steps": 6},
            "runner": {"checkpoint_minutes": 0, "keep_checkpoints": True},
        }
    )
    res = run_sweep(spec, out_dir=tmp_path)
    (path,) = (res.store.root / "checkpoints").glob("*.pt")
    state = torch.load(path, map_location="cuda", weights_only=True)
    assert state["loop"]["window"].is_cuda and "cuda" in state["rng"]
    (cell,) = res.plan.cells
    before = res.store.read_record(cell.id)
    res.store.record_path(cell.id).unlink()
    logs = []
    after = run_sweep(spec, out_dir=tmp_path, log=logs.append).store.read_record(cell.id)
    assert any("from its checkpoint at step 5" in m for m in logs), logs
    assert after.result.curves["val"][:-1] == before.result.curves["val"][:-1]  # the steps the checkpoint holds
    assert after.result.final_val_loss == pytest.approx(before.result.final_val_loss, rel=1e-3)
