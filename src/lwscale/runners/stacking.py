"""How many cells to train together as one stacked model (K)."""
from __future__ import annotations

import torch

from ..spec import Spec


def choose_k(spec: Spec, cells: list, device: torch.device, log=lambda s: None) -> int:
    """K from the spec (an int), or automatically: every cell of a group on CUDA (up to 16),
    one by one on the CPU."""
    k = spec.train.cells_per_stack
    if isinstance(k, int):
        return k
    if device.type == "cuda":
        return 16
    return 1
