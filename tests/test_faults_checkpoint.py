"""Checkpoints that cannot be trusted are never resumed, and a stack's checkpoint is resumed
however K is chosen on the rerun."""
import json

import numpy as np
import torch

from lwscale.checkpoint import StackCheckpoint
from test_scaleout import small_spec


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
    from lwscale.spec import parse_spec

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
        assert after[key] == before[key], key          # retrained from the start: the clean result


def test_a_checkpoint_without_its_checksum_is_not_resumed(tmp_path):
    ckpt = StackCheckpoint(tmp_path, ["a"], every_s=0)
    ckpt.path.parent.mkdir(parents=True)
    torch.save({"version": 3, "cells": ["a"], "model": {}, "optimizer": {}, "rng": {}, "loop": {"step": 3}}, ckpt.path)
    logs = []
    ckpt.log = logs.append
    assert ckpt.restore(None, None, torch.device("cpu")) is None
    assert len(logs) == 1 and "no checksum" in logs[0] and "starting the stack over" in logs[0]
