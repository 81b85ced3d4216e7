"""The ``synthetic`` source: sequences sampled from a fixed random *teacher* Transformer,
deeper and wider than the students, so that wider students reach lower loss and no data
repeats. The stream is generated in fixed chunks, each seeded by (teacher seed, data seed,
chunk index), so any prefix is identical however long the run, and chunks are cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lwscale.data.corpus import DATA_VERSION, atomic_save_npy, cache_dir, content_digest, token_dtype_for
from lwscale.model.config import ModelConfig
from lwscale.model.transformer import apply_rope, build


@dataclass(frozen=True)
class TeacherConfig:
    vocab_size: int = 256
    width: int = 256
    depth: int = 4
    head_dim: int = 64
    seq_len: int = 128
    seed: int = 0
    entropy: float = 0.5  # target mean next-token entropy, as a fraction of ln(vocab)
    chunk_seqs: int = 512  # sequences per cached chunk


class Teacher:
    """A random LLaMA-style Transformer (our model, K = 1, SP init) sampled with a KV cache.

    Its logits are scaled by a temperature calibrated once, by bisection, so that the mean
    next-token entropy on a probe batch is ``entropy * ln(V)``: peaky enough to be learnable,
    random enough never to loop.
    """

    def __init__(self, cfg: TeacherConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        mcfg = ModelConfig(
            vocab_size=cfg.vocab_size,
            width=cfg.width,
            base_width=cfg.width,
            depth=cfg.depth,
            head_dim=cfg.head_dim,
            ffn_mult=2.75 if cfg.width % 4 == 0 else 3.0,
            seq_len=cfg.seq_len + 1,
        )
        self.model = build(mcfg, seeds=[cfg.seed], device=device).eval()
        self.scale = self._calibrate()

    @torch.no_grad()
    def _calibrate(self) -> float:
        gen = torch.Generator(device="cpu").manual_seed(self.cfg.seed + 7919)
        probe = torch.randint(0, self.cfg.vocab_size, (1, 16, min(64, self.cfg.seq_len)), generator=gen)
        logits = self.model(probe.to(self.device)).float().flatten(0, 2)
        target = self.cfg.entropy * math.log(self.cfg.vocab_size)

        def entropy(s: float) -> float:
            logp = torch.log_softmax(logits * s, -1)
            return float(-(logp.exp() * logp).sum(-1).mean())

        lo, hi = math.log(1e-3), math.log(1e4)
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if entropy(math.exp(mid)) > target else (lo, mid)
        return math.exp((lo + hi) / 2)

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> np.ndarray:
        """n sequences of seq_len + 1 tokens, sampled autoregressively with a KV cache."""
        m, T = self.model, self.cfg.seq_len + 1
        gen = torch.Generator(device=self.device).manual_seed(seed)
        out = torch.empty(n, T, dtype=torch.long, device=self.device)
        out[:, 0] = torch.randint(0, self.cfg.vocab_size, (n,), generator=gen, device=self.device)
        H, hd = m.cfg.n_heads, m.cfg.head_dim
        caches = [
            (torch.empty(n, H, T, hd, device=self.device), torch.empty(n, H, T, hd, device=self.device))
            for _ in m.blocks
        ]
        for t in range(T - 1):
            x = m.embed[0][out[:, t]].unsqueeze(0)  # [1, n, d]
            cos, sin = m.rope_cos[t : t + 1], m.rope_sin[t : t + 1]
            for block, (kc, vc) in zip(m.blocks, caches):
                a = block.attn
                h = block.attn_norm(x)
                q = apply_rope(a.q(h).view(n, 1, H, hd).transpose(1, 2), cos, sin)
                kc[:, :, t : t + 1] = apply_rope(a.k(h).view(n, 1, H, hd).transpose(1, 2), cos, sin)
                vc[:, :, t : t + 1] = a.v(h).view(n, 1, H, hd).transpose(1, 2)
                y = torch.nn.functional.scaled_dot_product_attention(
                    q, kc[:, :, : t + 1], vc[:, :, : t + 1], scale=a.scale
                )
                x = x + a.o(y.transpose(1, 2).reshape(1, n, -1))
                x = x + block.mlp(block.mlp_norm(x))
            logits = m.logits(m.norm(x))[0].float() * self.scale
            out[:, t + 1] = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(1)
        return out.cpu().numpy().astype(token_dtype_for(self.cfg.vocab_size))


class SyntheticStream:
    """The teacher's endless stream for one data seed, in cached chunks of sequences."""

    def __init__(self, cfg: TeacherConfig, device: torch.device, stream_seed: int):
        self.cfg, self.device, self.stream_seed = cfg, device, stream_seed
        self.key = content_digest(DATA_VERSION, "teacher", cfg.__dict__, device.type)
        self.folder = cache_dir() / f"synthetic-{self.key}"
        self._teacher: Teacher | None = None
        self._chunks: dict[int, np.ndarray] = {}

    def _path(self, i: int) -> Path:
        return self.folder / f"seed{self.stream_seed}-chunk{i:06d}.npy"

    def cached(self, i: int) -> bool:
        """Whether chunk ``i`` is on disk already (generating it costs a teacher's forward passes)."""
        return self._path(i).exists()

    def chunk(self, i: int) -> np.ndarray:
        if i not in self._chunks:
            path = self._path(i)
            if not path.exists():
                if self._teacher is None:
                    self._teacher = Teacher(self.cfg, self.device)
                self.folder.mkdir(parents=True, exist_ok=True)
                atomic_save_npy(path, self._teacher.sample(self.cfg.chunk_seqs, _seed_of(self.stream_seed, i)))
            if len(self._chunks) > 8:
                self._chunks.pop(next(iter(self._chunks)))
            self._chunks[i] = np.load(path)
        return self._chunks[i]

    def sequences(self, start: int, count: int) -> np.ndarray:
        c = self.cfg.chunk_seqs
        rows = [self.chunk(j // c)[j % c] for j in range(start, start + count)]
        return np.stack(rows)

    def ensure(self, n_seqs: int, progress: Callable[[int, int], None] | None = None) -> None:
        """Generate (or find cached) every chunk the first n_seqs sequences need."""
        n_chunks = -(-n_seqs // self.cfg.chunk_seqs)
        for i in range(n_chunks):
            if not self._path(i).exists():
                self.chunk(i)
            if progress:
                progress(i + 1, n_chunks)


def _seed_of(*parts: int) -> int:
    return int(content_digest(*parts)[:12], 16)
