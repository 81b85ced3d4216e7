"""One cell's training step at widths 256-2048 (GPU): lwscale's step against a plain
PyTorch reference loop on the same model and batch.

Ours: the stacked model with K = 1 and lwscale's StackedAdamW (per-cell clipping,
divergence freezing), bf16 autocast and torch.compile, exactly as a sweep trains a cell.
Reference: the same model, torch.compile, bf16 autocast, clip_grad_norm_ and
torch.optim.AdamW(fused=True). Reports tokens/s, TFLOP/s, MFU (per-device peak table,
lwscale.training.perf) and peak memory per width, and ours/reference. Writes --json.

    python benchmarks/bench_step.py --batch 16 --seq 1024 --depth 8 --json step.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from lwscale.model.classes import group_hparams, group_keys
from lwscale.model.config import ModelConfig, flops_per_token
from lwscale.model.params import classify_model
from lwscale.model.transformer import build
from lwscale.sweep.spec import parse_spec
from lwscale.training.loop import time_steps
from lwscale.training.perf import device_name, peak_flops


def reference_step_time(cfg: ModelConfig, batch: int, steps: int, warmup: int) -> float:
    """Seconds per step of the plain loop: compile + bf16 + fused torch AdamW."""
    device = torch.device("cuda")
    model = build(cfg, seeds=[0], device=device)
    params = dict(model.named_parameters())
    groups = []
    for key, names in group_keys(classify_model(model)).items():
        lr, wd = group_hparams(key, "sqrt-wd", 1e-3, 0.1)
        groups.append({"params": [params[n] for n in names], "lr": lr, "weight_decay": wd})
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.95), eps=1e-8, fused=True)
    fwd = torch.compile(model)
    tokens = torch.randint(0, cfg.vocab_size, (1, batch, cfg.seq_len + 1), device=device)

    def one() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(tokens[..., :-1], tokens[..., 1:]).float().sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        one()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_step.py needs a CUDA GPU")
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    peak = peak_flops(device, "bf16")
    rows = []
    for w in a.widths:
        spec = parse_spec(
            {
                "model": {"widths": [w], "depth": a.depth, "head_dim": 64, "seq_len": a.seq},
                "data": {"source": "synthetic", "vocab_size": a.vocab},
                "train": {"batch_size": a.batch, "device": "cuda"},
                "grid": {"eta": [1e-3], "wd": [0.1]},
            }
        )
        cfg = ModelConfig(vocab_size=a.vocab, width=w, base_width=256, depth=a.depth, head_dim=64, seq_len=a.seq)
        torch.cuda.reset_peak_memory_stats()
        ours = time_steps(cfg, spec, device, k=1, steps=a.steps, warmup=a.warmup)
        mem = torch.cuda.max_memory_allocated() / 2**30
        ref = reference_step_time(cfg, a.batch, a.steps, a.warmup)
        tok = a.batch * a.seq
        fpt = flops_per_token(cfg)
        row = {
            "width": w,
            "tokens_per_s": tok / ours,
            "tflops": tok * fpt / ours / 1e12,
            "mfu": tok * fpt / ours / peak if peak else None,
            "peak_mem_gib": mem,
            "ref_tokens_per_s": tok / ref,
            "ours_over_ref": ref / ours,
        }
        rows.append(row)
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "n/a"
        print(
            f"width {w}: {row['tokens_per_s']:,.0f} tok/s, {row['tflops']:.0f} TFLOP/s, MFU {mfu}, "
            f"{mem:.1f} GiB; reference {row['ref_tokens_per_s']:,.0f} tok/s; ours/ref {row['ours_over_ref']:.2f}x",
            flush=True,
        )
    out = {
        "device": device_name(device),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "depth": a.depth,
        "seq": a.seq,
        "batch": a.batch,
        "vocab": a.vocab,
        "rows": rows,
    }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    w1024 = next((r for r in rows if r["width"] == 1024), rows[-1])
    mfu = f"{w1024['mfu']:.1%}" if w1024["mfu"] is not None else "n/a"
    print(f"width {w1024['width']}: MFU {mfu}, ours/reference {w1024['ours_over_ref']:.2f}x")


if __name__ == "__main__":
    main()
