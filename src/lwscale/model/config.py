"""The configs of the models a cell trains, without torch: lwscale's Transformer (``ModelConfig``)
and a user's model (``UserModelConfig``, ``model.factory``), their FLOPs per token and the
parametrization. Planning a sweep and reading a run need only these; the modules that build
the models (transformer.py, user.py) import torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TypeVar

# matrix types of a block, in the order the diagnostics report them
MATRIX_TYPES = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 4096
    width: int = 256
    base_width: int = 256  # muP base width d0; SP uses base_width = width
    depth: int = 4
    head_dim: int = 64
    ffn_mult: float = 2.75  # SwiGLU hidden = ffn_mult * width, exactly
    seq_len: int = 256
    init_std: float = 0.02
    rope_theta: float = 10000.0
    attn_scale: float | None = None  # None -> 1/sqrt(head_dim)
    tie_embeddings: bool = False
    readout_zero_init: bool = False
    unembed_class: str = "vector"  # "matrix": hidden-matrix init and no readout multiplier
    norm_eps: float = 1e-6
    n_stack: int = 1  # K, the cells held in stacked weights (named n_stack in records: the contract)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.base_width <= 0:
            raise ValueError(f"widths must be positive (width={self.width}, base_width={self.base_width})")
        if self.width % self.head_dim:
            raise ValueError(f"width {self.width} is not divisible by head_dim {self.head_dim}")
        if not float(self.ffn_mult * self.width).is_integer():
            raise ValueError(f"ffn_mult {self.ffn_mult} x width {self.width} is not a whole number")
        if self.n_stack < 1:
            raise ValueError("n_stack must be at least 1")
        if self.unembed_class not in ("vector", "matrix"):
            raise ValueError(f"unembed_class must be 'vector' or 'matrix', got {self.unembed_class!r}")
        if self.unembed_class == "matrix" and self.tie_embeddings:
            raise ValueError(
                "unembed_class 'matrix' needs an untied unembedding: a tied one is the embedding, which is vector-like"
            )

    @property
    def n_heads(self) -> int:
        return self.width // self.head_dim

    @property
    def ffn_hidden(self) -> int:
        return int(self.ffn_mult * self.width)

    @property
    def width_mult(self) -> float:
        return self.width / self.base_width

    @property
    def readout_matrix(self) -> bool:
        """Whether the unembedding is trained as a matrix-like parameter (see the module doc)."""
        return self.unembed_class == "matrix"

    def to_dict(self) -> dict:
        """The fields as a dict. ``unembed_class`` is left out at its default ("vector"): it
        was added later, and cell ids hash this dict, so existing ids stay the same."""
        d = asdict(self)
        if d["unembed_class"] == "vector":
            del d["unembed_class"]
        return d


def matrix_type(name: str) -> str | None:
    """'q', 'k', ..., 'down' for a block weight name, else None."""
    parts = name.split(".")
    if len(parts) >= 4 and parts[0] == "blocks" and parts[-1] == "weight" and parts[-2] in MATRIX_TYPES:
        return parts[-2]
    return None


def flops_per_token(cfg: ModelConfig) -> float:
    """Training FLOPs per token of one cell: 6*(N_matrix + V*d) + 12*L*d*T (docs/performance.md, "MFU")."""
    d, L = cfg.width, cfg.depth
    n_matrix = L * (4 * d * d + 3 * d * cfg.ffn_hidden)
    return 6.0 * (n_matrix + cfg.vocab_size * d) + 12.0 * L * d * cfg.seq_len


def user_types(names) -> dict[str, str]:
    """The matrix type of each of a user model's parameter names: the name without block
    indices and without its last component (``blocks.3.attn.qkv.weight`` -> ``attn.qkv``),
    shortened to its last components as far as it stays distinct (-> ``qkv``). Weights of
    the same layer in every block share a type, so values are averaged over blocks."""
    keys = {}
    for n in names:
        parts = [p for p in n.split(".") if not p.isdigit()]
        keys[n] = tuple(parts[:-1]) or tuple(parts)
    full = set(keys.values())
    out = {}
    for n, key in keys.items():
        for i in range(1, len(key) + 1):
            if sum(1 for k in full if k[-i:] == key[-i:]) == 1:
                break
        out[n] = ".".join(key[-i:])
    return out


Config = TypeVar("Config")  # a dataclass with width and base_width


def parametrization(cfg: Config, mup: bool) -> Config:
    """The config a cell trains (ours, or a user model's ``UserModelConfig``): muP keeps the
    spec's base width; SP is muP with base := own width."""
    return cfg if mup else replace(cfg, base_width=cfg.width)


@dataclass(frozen=True)
class UserModelConfig:
    """What a factory cell's model is: ``build(width)`` (with ``vocab_size`` and ``seq_len``
    where it takes them), parametrized against ``base_width`` (SP: its own width)."""

    vocab_size: int
    width: int
    base_width: int
    seq_len: int
    depth: int  # the spec's model.depth and init_std: not passed to the factory, but written
    init_std: float  # in the records' model dict, which cell ids hash (to_dict)
    n_stack: int = 1  # K: always 1, a user's model is not stacked

    @property
    def width_mult(self) -> float:
        return self.width / self.base_width

    def to_dict(self) -> dict:
        """The records' ``model`` dict, which cell ids hash (docs/records.md): the keys of
        lwscale's own ``ModelConfig.to_dict``, its layout keys holding placeholders that are
        valid at any width (head_dim 1, ffn_mult 1). Mapped here so that a factory run's
        records and cell ids are those it had when a factory cell carried such a config."""
        return ModelConfig(
            vocab_size=self.vocab_size,
            width=self.width,
            base_width=self.base_width,
            depth=self.depth,
            head_dim=1,
            ffn_mult=1.0,
            seq_len=self.seq_len,
            init_std=self.init_std,
            n_stack=self.n_stack,
        ).to_dict()


def factory_config(spec, width: int, vocab_size: int) -> UserModelConfig:
    """The config of the spec's factory model at ``width`` (base width: the spec's)."""
    ms = spec.model
    return UserModelConfig(
        vocab_size=vocab_size, width=width, base_width=ms.d0, seq_len=ms.seq_len, depth=ms.depth, init_std=ms.init_std
    )
