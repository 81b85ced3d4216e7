"""K cells stacked into one model against the same K cells trained one by one.

Both run in this process on the same random tokens with the same tokens per cell per step
(batch x seq_len, printed), through lwscale's own training step (model, StackedAdamW, bf16
and torch.compile on CUDA as in a sweep). Reports cell-steps/s for both and their ratio,
and, on CUDA, the stack's aggregate MFU. Writes a small JSON next to --json.

    python benchmarks/bench_stacking.py --width 32 --k 9 --vocab 1024          # CPU
    python benchmarks/bench_stacking.py --width 256 --k 16 --seq 1024 --batch 8 # GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from lwscale.model.config import ModelConfig, flops_per_token
from lwscale.sweep.spec import parse_spec
from lwscale.training.loop import resolve_compile, resolve_precision, time_steps
from lwscale.training.perf import device_name, peak_flops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--k", type=int, default=9)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    a = ap.parse_args()

    device = torch.device(
        "cuda" if a.device == "auto" and torch.cuda.is_available() else ("cpu" if a.device == "auto" else a.device)
    )
    spec = parse_spec(
        {
            "model": {"widths": [a.width], "depth": a.depth, "head_dim": a.head_dim, "seq_len": a.seq},
            "data": {"source": "synthetic", "vocab_size": a.vocab},
            "train": {"batch_size": a.batch, "device": str(device)},
            "grid": {"eta": [1e-3], "wd": [0.1]},
        }
    )
    cfg = ModelConfig(
        vocab_size=a.vocab, width=a.width, base_width=a.width, depth=a.depth, head_dim=a.head_dim, seq_len=a.seq
    )
    tokens_per_cell_step = a.batch * a.seq

    def timed(k: int) -> float:
        return time_steps(cfg, spec, device, k=k, steps=a.steps, warmup=2 if device.type == "cpu" else 5)

    # alternate the two so that a busy machine slows both alike; the median of the repeats
    runs = [(timed(1), timed(a.k)) for _ in range(a.repeats)]
    t1, tk = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    one_by_one = 1.0 / t1  # cell-steps/s: K separate cells take K x t1 for K cell-steps
    stacked = a.k / tk
    precision = resolve_precision(spec, device)
    peak = peak_flops(device, precision)
    fpt = flops_per_token(cfg)
    out = {
        "device": device_name(device),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "width": a.width,
        "depth": a.depth,
        "vocab": a.vocab,
        "k": a.k,
        "tokens_per_cell_per_step": tokens_per_cell_step,
        "precision": precision,
        "compile": resolve_compile(spec, device),
        "one_by_one_cell_steps_per_s": one_by_one,
        "stacked_cell_steps_per_s": stacked,
        "stacked_mfu": (stacked * tokens_per_cell_step * fpt / peak) if peak else None,
        "ratio": stacked / one_by_one,
    }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1), file=sys.stderr)
    print(
        f"tokens per cell per step {tokens_per_cell_step}; one by one {one_by_one:.2f} cell-steps/s; "
        f"stacked K={a.k} {stacked:.2f} cell-steps/s"
    )
    print(f"stacked / one-by-one: {out['ratio']:.2f}x")


if __name__ == "__main__":
    main()
