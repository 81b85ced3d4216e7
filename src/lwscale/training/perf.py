"""Throughput and model FLOPs utilisation (MFU) against a per-device peak table.

FLOPs per token of one cell are 6*(N_matrix + V*d) + 12*L*d*T (``config.flops_per_token``):
N_matrix counts the block matrices, V*d the unembedding matmul, the last term attention;
the embedding lookup costs nothing. MFU = achieved FLOP/s / the device's dense bf16 peak.
Peaks are looked up by device name, never assumed: an unknown device gets no MFU.
"""

from __future__ import annotations

import torch

# dense bf16 tensor-core peak, FLOP/s (no sparsity), by a substring of the device name
PEAK_BF16 = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 80GB HBM3": 989e12,  # the SXM part reports itself this way
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "RTX 4090": 165e12,
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def peak_flops(device: torch.device, precision: str = "bf16") -> float | None:
    """The dense peak FLOP/s for ``precision`` on ``device``, or None when not known
    (any CPU, an unlisted GPU, or fp32 math, whose peak depends on TF32 settings)."""
    if device.type != "cuda" or precision != "bf16":
        return None
    name = device_name(device)
    for key, peak in PEAK_BF16.items():  # most specific keys first
        if key in name:
            return peak
    return None


def throughput(tokens: int, seconds: float, flops_per_token: float, n_cells: int, peak: float | None) -> dict:
    """Per-cell tokens/s and the stack's achieved TFLOP/s and MFU."""
    if seconds <= 0:
        return {"tokens_per_s": None, "tflops": None, "mfu": None}
    flops = tokens * flops_per_token * n_cells / seconds
    return {
        "tokens_per_s": tokens / seconds,
        "tflops": flops / 1e12,
        "mfu": flops / peak if peak else None,
    }
