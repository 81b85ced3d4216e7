"""A small user Transformer with a ``build(width)`` factory: lwscale's rules on your own model.

Nothing here comes from lwscale's built-in model. It is a plain pre-LayerNorm GPT with
learned positions, written the way a user would, and made muP-ready by one call:
``lwscale.apply_mup(model, base, readout="head")``. A sweep spec names the factory:

    model: {factory: "examples.tiny_lm:build", widths: [32, 64]}

lwscale calls ``build(width)`` (passing ``vocab_size`` and ``seq_len`` too, because this
function accepts them) under a fixed seed per cell, and reads logits [B, T, V] back.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import lwscale

BASE_WIDTH = 32  # the proxy width the grid is tuned at
HEAD_DIM = 16
DEPTH = 2


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        self.fc = nn.Linear(width, 4 * width)
        self.out = nn.Linear(4 * width, width)
        self.heads = width // HEAD_DIM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, HEAD_DIM).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyLM(nn.Module):
    def __init__(self, width: int, vocab_size: int = 256, seq_len: int = 64):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, width)
        self.pos = nn.Embedding(seq_len, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(DEPTH))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def build(width: int, vocab_size: int = 256, seq_len: int = 64) -> nn.Module:
    """The model at ``width`` with muP's parametrization relative to BASE_WIDTH."""
    model = TinyLM(width, vocab_size, seq_len)
    base = TinyLM(BASE_WIDTH, vocab_size, seq_len)
    return lwscale.apply_mup(model, base, readout="head")
