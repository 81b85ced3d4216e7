"""Learning-rate schedules: lr_t = lr_peak * factor(t). Linear warmup, then cosine / WSD / constant."""

from __future__ import annotations

import math


def lr_factor(
    step: int, steps: int, warmup: int, schedule: str, min_ratio: float = 0.1, decay_frac: float = 0.2
) -> float:
    """The factor applied to every peak lr at optimizer step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, steps - warmup)
        p = min(1.0, (step - warmup) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "wsd":
        n_decay = max(1, round(decay_frac * steps))
        start = steps - n_decay
        if step < start:
            return 1.0
        return 1.0 - (1.0 - min_ratio) * (step - start + 1) / n_decay
    raise ValueError(f"unknown schedule {schedule!r}")


def factor_sum(steps: int, warmup: int, schedule: str, min_ratio: float = 0.1, decay_frac: float = 0.2) -> float:
    """Sum of the factors over a run: timescales completed = lr_peak * wd * factor_sum."""
    return sum(lr_factor(t, steps, warmup, schedule, min_ratio, decay_frac) for t in range(steps))
