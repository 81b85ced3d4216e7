"""A LLaMA-style Transformer with muP multipliers, holding K same-width cells at once.

Every weight has a leading stack axis K: cell k's linear maps are ``weight[k]`` and a
single run is simply K = 1, so the batched and the one-by-one paths are the same code.
Linears are batched matmuls (``torch.bmm``); attention folds K into SDPA's batch axis.

Architecture (docs/science.md §3): pre-RMSNorm blocks, RoPE, causal SDPA attention,
SwiGLU FFN with hidden size exactly ``ffn_mult * width``, no biases, untied embedding and
unembedding (tying is an option), final RMSNorm. Width grows by adding heads of a fixed
``head_dim``; depth is fixed across widths.

muP parametrization with m = width / base_width and sigma = init_std:
  * hidden matrices (q k v o gate up down): init std sigma * sqrt(1/m)
  * residual-output projections (o, down): an extra 1/sqrt(2 * depth)
  * embedding: init std sigma
  * unembedding, by ``unembed_class`` (zero-init is an option for both):
      - "vector" (default; its vocab dim is fixed): init std sigma, logits multiplied by 1/m,
        as microsoft/mup's MuReadout. With the vector lr eta, one Adam step moves each
        logit by about eta * d / m = eta * d0: flat in width.
      - "matrix" (the vocab dim counted as growing): the hidden-matrix treatment, init std
        sigma * sqrt(1/m) and no multiplier. Its matrix lr eta / m moves each logit by
        about (eta / m) * d = eta * d0: flat too. (Keeping the 1/m multiplier as well would
        scale the width out twice: logit updates falling as 1/m.)
    A tied unembedding is the embedding, which is vector-like, so it always takes the 1/m.
SP at width d is this model with base_width := d, so at m = 1 muP and SP coincide exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from lwscale.model.config import ModelConfig


def rms_norm(x: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm with a per-cell gain: x [K, N, d], gain [K, d]."""
    return F.rms_norm(x, (x.shape[-1],), eps=eps) * gain.unsqueeze(1)


class StackedLinear(nn.Module):
    """K independent bias-free linear maps, weight [K, out, in]; x [K, N, in] -> [K, N, out]."""

    def __init__(self, k: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, d_out, d_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x, self.weight.transpose(1, 2))


class RMSNorm(nn.Module):
    def __init__(self, k: int, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(k, d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def rope_tables(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [T, hd/2], computed on the CPU in float64 (``build`` moves them with the model).
    Also inside a meta-device build (``params.classify_model``, which needs shapes only): a meta
    ``arange`` goes through torch's Python decompositions, whose first use costs seconds."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device="cpu") / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64, device="cpu"), inv_freq)  # [T, hd/2]
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on x [B, H, T, hd] with tables [T, hd/2]."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        k, d = cfg.n_stack, cfg.width
        self.q, self.k, self.v, self.o = (StackedLinear(k, d, d) for _ in range(4))
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.scale = cfg.attn_scale if cfg.attn_scale is not None else 1.0 / math.sqrt(cfg.head_dim)

    def forward(self, x: torch.Tensor, batch: int, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        K, N, d = x.shape
        T = N // batch

        def heads(t: torch.Tensor) -> torch.Tensor:  # [K, B*T, d] -> [K*B, H, T, hd]
            return t.view(K * batch, T, self.n_heads, self.head_dim).transpose(1, 2)

        q = apply_rope(heads(self.q(x)), cos[:T], sin[:T])
        k = apply_rope(heads(self.k(x)), cos[:T], sin[:T])
        y = F.scaled_dot_product_attention(q, k, heads(self.v(x)), is_causal=True, scale=self.scale)
        return self.o(y.transpose(1, 2).reshape(K, N, d))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        k, d, h = cfg.n_stack, cfg.width, cfg.ffn_hidden
        self.gate, self.up = StackedLinear(k, d, h), StackedLinear(k, d, h)
        self.down = StackedLinear(k, h, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.n_stack, cfg.width, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.n_stack, cfg.width, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, batch: int, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), batch, cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """K stacked LLaMA-style cells. ``forward(idx[K,B,T], targets)`` -> per-cell loss [K]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        K, V, d = cfg.n_stack, cfg.vocab_size, cfg.width
        self.embed = nn.Parameter(torch.empty(K, V, d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = RMSNorm(K, d, cfg.norm_eps)
        self.unembed = None if cfg.tie_embeddings else nn.Parameter(torch.empty(K, V, d))
        # muP readout: logits x d0/d, unless the unembedding is matrix-like (its lr is eta/m)
        self.readout_mult = 1.0 if cfg.readout_matrix else 1.0 / cfg.width_mult
        cos, sin = rope_tables(cfg.seq_len, cfg.head_dim, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    # ---- init -------------------------------------------------------------------------
    def init_std(self, name: str) -> float | None:
        """The init std of a parameter by name; None means ones (norm gains)."""
        cfg = self.cfg
        if name.endswith("norm.weight"):
            return None
        if name == "embed":
            return cfg.init_std
        std = cfg.init_std / math.sqrt(cfg.width_mult)  # sigma * sqrt(d0/d)
        if name == "unembed":
            return 0.0 if cfg.readout_zero_init else std if cfg.readout_matrix else cfg.init_std
        if name.endswith(("attn.o.weight", "mlp.down.weight")):
            std /= math.sqrt(2 * cfg.depth)
        return std

    @torch.no_grad()
    def init_weights(self, seeds: list[int]) -> None:
        """Initialise cell k from seed ``seeds[k]``: cells with the same seed start identical,
        and cell k's weights equal those of a K = 1 model built with the same seed."""
        if len(seeds) != self.cfg.n_stack:
            raise ValueError(f"need {self.cfg.n_stack} seeds, got {len(seeds)}")
        named = list(self.named_parameters())
        for k, seed in enumerate(seeds):
            gen = torch.Generator(device=named[0][1].device).manual_seed(int(seed))
            for name, p in named:
                std = self.init_std(name)
                if std is None:
                    p[k].fill_(1.0)
                elif std == 0.0:
                    p[k].zero_()
                else:
                    p[k].normal_(0.0, std, generator=gen)

    # ---- forward ----------------------------------------------------------------------
    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final normalised hidden states [K, B*T, d] for tokens idx [K, B, T]."""
        K, B, T = idx.shape
        V, d = self.cfg.vocab_size, self.cfg.width
        offsets = torch.arange(K, device=idx.device).view(K, 1, 1) * V  # cell k reads embed[k]
        x = F.embedding((idx + offsets).view(K, B * T), self.embed.view(K * V, d))
        for block in self.blocks:
            x = block(x, B, self.rope_cos, self.rope_sin)
        return self.norm(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        w = self.embed if self.unembed is None else self.unembed
        return torch.bmm(h, w.transpose(1, 2)) * self.readout_mult

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [K, B, T, V] without targets; with targets [K, B, T], the mean
        cross-entropy of each cell, [K] in fp32."""
        K, B, T = idx.shape
        logits = self.logits(self.hidden(idx))
        if targets is None:
            return logits.view(K, B, T, -1)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.reshape(-1), reduction="none")
        return loss.view(K, B * T).mean(1)

    # ---- bookkeeping ------------------------------------------------------------------
    def matrices(self) -> dict[str, nn.Parameter]:
        """Matrix-like block weights by name, e.g. ``blocks.0.mlp.up.weight``."""
        return {n: p for n, p in self.named_parameters() if n.startswith("blocks.") and p.dim() == 3}


def build(cfg: ModelConfig, seeds: list[int] | None = None, device: str | torch.device = "cpu") -> Transformer:
    """Build and initialise a model; ``seeds`` defaults to [0] * K."""
    model = Transformer(cfg).to(device)
    model.init_weights(seeds if seeds is not None else [0] * cfg.n_stack)
    return model
