"""The loss floor of a sweep's data, without torch (the CLI prints it under its tables)."""

from __future__ import annotations

import math


def loss_floor(data_spec) -> float | None:
    """The lowest expected validation loss any student can reach on ``data_spec``'s data, in nats:
    for the synthetic source the teacher's mean next-token entropy, ``entropy * ln(vocab_size)``
    (its logits are scaled to it; ``Teacher``); None for text, whose floor is unknown."""
    if getattr(data_spec, "source", None) != "synthetic":
        return None
    return float(data_spec.teacher.entropy * math.log(data_spec.vocab_size))


def floor_note(data_spec) -> str | None:
    """One line saying the loss floor, for tables and figures; None where there is none."""
    floor = loss_floor(data_spec)
    if floor is None:
        return None
    return (
        f"loss floor {floor:.3f} nats: the teacher's entropy ({data_spec.teacher.entropy:g} x ln "
        f"{data_spec.vocab_size}); read the losses as distance above it"
    )
