"""Checkpoints that cannot be trusted are never resumed, and a stack's checkpoint is resumed
however K is chosen on the rerun."""

import torch
from runfixtures import small_spec

from lwscale.training.checkpoint import StackCheckpoint


def _flip_tensor_bits(path, tensor: torch.Tensor, n: int = 64) -> None:
    """Flip a high exponent bit of ``n`` values of ``tensor`` where its bytes lie in ``path``."""
    data = bytearray(path.read_bytes())
    raw = tensor.detach().cpu().contiguous().numpy().tobytes()
    at = bytes(data).find(raw)
    assert at >= 0, "the tensor's bytes are not stored as is"
    for i in range(min(n, tensor.numel())):
        data[at + 4 * i + 3] ^= 0x20
    path.write_bytes(bytes(data))


def test_a_bit_flipped_checkpoint_is_set_aside_and_the_stack_retrained(tmp_path):
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec(small_spec(etas=(2**-6,), steps=6, checkpoint_minutes=0, keep_checkpoints=True))
    res = run_sweep(spec, out_dir=tmp_path)
    (path,) = (res.store.root / "checkpoints").glob("*.pt")
    state = torch.load(path, weights_only=True)
    big = max(state["model"].values(), key=lambda t: t.numel())
    _flip_tensor_bits(path, big)
    (cell,) = res.plan.cells
    before = res.store.read_record(cell.id)
    res.store.record_path(cell.id).unlink()

    logs = []
    again = run_sweep(spec, out_dir=tmp_path, log=logs.append)
    assert not any("resuming" in m for m in logs), logs
    assert any("checksum" in m and "set aside" in m for m in logs), logs
    assert path.with_name(path.name + ".corrupt").exists()
    after = again.store.read_record(cell.id)
    for key in ("final_val_loss", "final_train_loss", "curves"):
        assert getattr(after.result, key) == getattr(before.result, key), (
            key
        )  # retrained from the start: the clean result


def test_a_checkpoint_without_its_checksum_is_not_resumed(tmp_path):
    ckpt = StackCheckpoint(tmp_path, ["a"], every_s=0)
    ckpt.path.parent.mkdir(parents=True)
    torch.save({"version": 3, "cells": ["a"], "model": {}, "optimizer": {}, "rng": {}, "loop": {"step": 3}}, ckpt.path)
    logs = []
    ckpt.log = logs.append
    assert ckpt.restore(None, None, torch.device("cpu")) is None
    assert len(logs) == 1 and "no checksum" in logs[0] and "starting the stack over" in logs[0]


def test_the_stack_of_a_checkpoint_is_resumed_when_k_is_timed_again_differently(tmp_path, monkeypatch):
    """cells_per_stack auto: the rerun times K again and may choose another; the run keeps the
    K it chose, so the interrupted stack is the same stack and resumes."""
    from lwscale.runners import stacking
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = small_spec(etas=(2**-7, 2**-6), steps=6, checkpoint_minutes=0)
    spec["train"]["cells_per_stack"] = "auto"
    spec = parse_spec(spec)
    timed = iter([2, 1, 1])
    monkeypatch.setattr(stacking, "k_for_speed", lambda *a, **kw: next(timed))
    monkeypatch.setenv("LWSCALE_FAULT", f"interrupt:step=3:once={tmp_path / 'fired'}")
    res = run_sweep(spec, out_dir=tmp_path)
    assert res.interrupted and len(list((res.store.root / "checkpoints").glob("*.pt"))) == 1
    logs = []
    again = run_sweep(spec, out_dir=tmp_path, log=logs.append)
    assert any("resuming a stack of 2 from its checkpoint at step 3" in m for m in logs), logs
    assert again.summary.done == 2 and not list((again.store.root / "checkpoints").glob("*.pt"))


def test_a_checkpointed_stack_is_kept_whole_when_the_pending_cells_are_cut_again(tmp_path, monkeypatch):
    """Five cells in stacks of 2 are cut 2 + 1 + 2; the single one is interrupted. Cut again, the
    three pending cells would make 2 + 1 of other cells; the checkpoint's stack is kept whole."""
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = small_spec(etas=(2**-9, 2**-8, 2**-7, 2**-6, 2**-5), steps=6, checkpoint_minutes=0)
    spec["train"]["cells_per_stack"] = 2
    spec = parse_spec(spec)
    monkeypatch.setenv("LWSCALE_FAULT", f"interrupt:step=3:k=1:once={tmp_path / 'fired'}")
    res = run_sweep(spec, out_dir=tmp_path)
    assert res.interrupted and res.summary.done == 2
    monkeypatch.delenv("LWSCALE_FAULT")
    logs = []
    again = run_sweep(spec, out_dir=tmp_path, log=logs.append)
    assert any("resuming a stack of 1 from its checkpoint at step 3" in m for m in logs), logs
    assert again.summary.done == 3 and not list((again.store.root / "checkpoints").iterdir())
