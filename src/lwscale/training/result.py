"""What training one cell measured: the training loop's output, one per cell of a stack.

The run directory turns it into the cell's record (``lwscale.rundir.record.CellRecord``,
docs/records.md), whose keys are these fields' names, in this order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np


@dataclass
class CellResult:
    """One cell's losses, curves and speed. Every field may be None in a record read back
    from disk (hand-made, or written by an older lwscale); the loop fills them all."""

    initial_loss: float | None = None  # train loss at step 0
    final_val_loss: float | None = None  # None unless done
    final_train_loss: float | None = None
    diverged_step: int | None = None  # the optimizer step at which the cell was frozen
    last_finite_loss: float | None = None  # its last finite train loss before that
    tokens: int | None = None
    tokens_per_s: float | None = None
    tflops: float | None = None  # the whole stack's achieved TFLOP/s
    mfu: float | None = None  # against the device's bf16 peak; None if unknown
    device_name: str | None = None
    flops_per_token: float | None = None
    wall_s: float | None = None
    stack_size: int | None = None  # K, the cells trained together
    device: str | None = None
    precision: str | None = None
    torch_version: str | None = None
    curves: dict = field(default_factory=dict)  # {"train": [[step, tokens, loss]], "val": [...]}
    diagnostics: dict | None = None  # train.diagnostics on: gain and sigma_max (docs/diagnostics.md)
    reason: str | None = field(default=None, repr=False)  # why it diverged
    spectra: dict[str, np.ndarray] | None = field(default=None, repr=False)  # -> spectra.npz beside the record

    @property
    def status(self) -> str:
        return "diverged" if self.diverged_step is not None else "done"


SPECTRA_FILE = "spectra.npz"  # a cell's end-of-training singular values, beside its record

# the fields a record stores under their own names (reason sits with the status; spectra in its own file)
RECORD_FIELDS = tuple(f.name for f in fields(CellResult) if f.name not in ("reason", "spectra"))


def mean_over_types(values: dict[str, float]) -> float:
    """The mean over matrix types of per-type values (NaN when there are none)."""
    vals = [v for v in values.values() if v is not None]
    return float(np.mean(vals)) if vals else float("nan")


# ---- summaries of a stored record ------------------------------------------------------------
def summary(diagnostics: dict | None) -> dict[str, float]:
    """results.csv's ``sigma_max`` (mean over matrix types of the block-averaged end
    sigma_max) and ``gain`` (mean over types of the last evaluation's gain), from a record's
    ``diagnostics``; NaN if absent."""
    diag = diagnostics or {}
    sig = (diag.get("sigma_max") or {}).get("by_type") or {}
    gains = (diag.get("gain") or {}).get("by_type") or {}
    last = {t: v[-1] for t, v in gains.items() if v}
    return {"sigma_max": mean_over_types(sig), "gain": mean_over_types(last)}


def load_spectra(path: Path) -> dict[str, np.ndarray]:
    """{parameter name: singular values (float32, descending)} from a cell's spectra.npz."""
    with np.load(path) as z:
        return {n: z[n].astype(np.float32) for n in z.files}
