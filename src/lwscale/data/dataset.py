"""``Dataset``: train batches as a pure function of (seed, step), and a fixed validation set.

Batches are a pure function of (seed, step): every cell of a width with the same seed sees
exactly the same batches (common random numbers), and a resumed run sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lwscale.data.synthetic import SyntheticStream, TeacherConfig


@dataclass
class Dataset:
    """Train batches as a function of (seed, step), and a fixed validation set."""

    vocab_size: int
    seq_len: int
    batch_size: int
    val: np.ndarray  # [n_val, T + 1]
    fingerprint: str
    _text: np.ndarray | None = None  # 1-D train stream (text sources)
    _streams: dict[int, SyntheticStream] = field(default_factory=dict)
    _teacher: TeacherConfig | None = None
    _device: torch.device | None = None

    def train_batch(self, seed: int, step: int) -> np.ndarray:
        """[B, T + 1] tokens for (seed, step)."""
        B, T = self.batch_size, self.seq_len
        if self._text is not None:
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, step])
            starts = rng.integers(0, len(self._text) - T - 1, size=B)
            return np.stack([self._text[s : s + T + 1] for s in starts])
        return self.stream(seed).sequences(step * B, B)

    def passes(self, steps: int) -> float:
        """How many times ``steps`` steps of batches read the training text over, on average (0 for
        synthetic data, which never repeats). Batches are random windows, so past 1 a cell sees
        the same text again."""
        if self._text is None:
            return 0.0
        return steps * self.batch_size * (self.seq_len + 1) / len(self._text)

    def stream(self, seed: int) -> SyntheticStream:
        if seed not in self._streams:
            self._streams[seed] = SyntheticStream(self._teacher, self._device, stream_seed=seed)
        return self._streams[seed]

    def prepare(self, seeds: list[int], steps: int, progress=None) -> None:
        """Make sure the batches of ``steps`` steps exist for every seed (synthetic only)."""
        if self._text is None:
            for s in seeds:
                self.stream(s).ensure(steps * self.batch_size, progress)
