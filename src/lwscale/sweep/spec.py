"""The sweep spec: a validated YAML file (pydantic models), every field with a default.

``load_spec(path)`` returns a ``Spec`` or raises ``SpecError`` whose message is one line
saying what is wrong and where (file, YAML line, key path). Unknown keys are errors.
See ``configs/*.yaml`` for commented examples of every field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lwscale.core.errors import UserError
from lwscale.science.rules import PRESETS, Rule, RuleError, custom, get_rule

# bounds that catch typos before they hang the planner or overflow a tensor size
MAX_WIDTH, MAX_DEPTH, MAX_STEPS, MAX_POINTS = 2**20, 1024, 10**7, 100_000
MAX_LOG2 = 256  # grid exponents: 2**256 is already far past any learning rate
MAX_TIMEOUT_MINUTES = 10**6  # about two years: a heartbeat thread can wait a quarter of it


class SpecError(UserError):
    """A spec that cannot be used."""


class Strict(BaseModel):
    # inf and nan are refused in every float field: none of them means anything as infinite
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ---- model ---------------------------------------------------------------------------------
class ModelSpec(Strict):
    widths: list[int] = Field(default=[256, 512, 1024, 2048], description="widths d to sweep")
    base_width: int | None = Field(
        default=None, le=MAX_WIDTH, description="muP base width d0; default: the smallest width"
    )
    depth: int = Field(default=8, ge=1, description="number of blocks, the same at every width")
    head_dim: int = Field(default=64, ge=2, description="fixed head size; heads = width / head_dim")
    ffn_mult: float = Field(default=2.75, gt=0, description="SwiGLU hidden size = ffn_mult * width, exactly")
    seq_len: int = Field(default=256, ge=2, le=2**20, description="tokens per training sequence")
    init_std: float = Field(default=0.02, gt=0, description="init std sigma at the base width")
    vector_lr_mult: float = Field(default=1.0, gt=0, description="vector-like lr = eta * vector_lr_mult")
    unembed_class: Literal["vector", "matrix"] = Field(
        default="vector",
        description="how the unembedding scales with width (built-in model): vector = lr eta, "
        "wd 0, init sigma, logits x d0/d (muP readout); matrix = the matrix rule's lr and wd, init "
        "sigma*sqrt(d0/d), no logit multiplier",
    )
    tie_embeddings: bool = False
    readout_zero_init: bool = False
    attn_scale: float | None = Field(default=None, description="attention logit scale; null = 1/sqrt(head_dim)")
    rope_theta: float = 10000.0
    factory: str | None = Field(
        default=None,
        description='your model instead of ours: "package.module:build", '
        "build(width) -> nn.Module giving logits (lwscale.model.user)",
    )
    loss: str | None = Field(
        default=None,
        description='with factory: "package.module:fn", loss = fn(output, targets); default: cross-entropy of logits',
    )

    @field_validator("widths")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("at least one width is needed")
        bad = [w for w in v if w <= 0]
        if bad:
            raise ValueError(f"widths must be positive, got {bad[0]}")
        if max(v) > MAX_WIDTH:
            raise ValueError(f"widths above {MAX_WIDTH:,} are not supported, got {max(v)}")
        if len(set(v)) != len(v):
            raise ValueError("widths are repeated")
        return sorted(v)

    @model_validator(mode="after")
    def _shapes(self) -> ModelSpec:
        if self.base_width is not None and self.base_width <= 0:
            raise ValueError(f"base_width must be positive, got {self.base_width}")
        if self.unembed_class == "matrix" and self.tie_embeddings:
            raise ValueError(
                "unembed_class matrix needs tie_embeddings: false (a tied unembedding is the "
                "embedding, which is vector-like)"
            )
        if self.loss and not self.factory:
            raise ValueError("model.loss needs model.factory (the built-in model has its own loss)")
        for key in ("factory", "loss"):
            ref = getattr(self, key)
            if ref is not None and (ref.count(":") != 1 or not all(ref.split(":"))):
                raise ValueError(f'{key} must look like "package.module:function", got {ref!r}')
        if self.factory:  # head_dim and ffn_mult describe lwscale's own model only
            return self
        for w in self.widths + [self.d0]:
            if w % self.head_dim:
                raise ValueError(f"width {w} is not divisible by head_dim {self.head_dim}")
            if w % 2 or self.head_dim % 2:
                raise ValueError("widths and head_dim must be even for RoPE")
            h = self.ffn_mult * w
            if not float(h).is_integer():
                raise ValueError(
                    f"ffn_mult {self.ffn_mult} x width {w} = {h:g} is not a whole number: the FFN "
                    "hidden/width ratio would differ between widths, breaking muP's proportionality"
                )
        return self

    @property
    def d0(self) -> int:
        return self.base_width or min(self.widths)


# ---- data ----------------------------------------------------------------------------------
class TeacherSpec(Strict):
    width: int | None = Field(default=None, ge=2, description="teacher width; default 2 x the widest student")
    depth: int | None = Field(default=None, ge=1, description="teacher depth; default student depth + 2")
    head_dim: int | None = Field(default=None, ge=2, description="default: the students' head_dim")
    seed: int = Field(default=0, ge=0, le=2**62)
    entropy: float = Field(default=0.5, gt=0, lt=1, description="mean next-token entropy / ln(vocab)")


class DataSpec(Strict):
    source: Literal["sotu", "synthetic", "text", "tokens"] = "sotu"
    tokenizer: Literal["bpe", "bytes"] = "bpe"
    vocab_size: int = Field(default=4096, ge=2, le=2**31 - 1)
    val_every: int = Field(default=10, ge=2, description="hold out every n-th document for validation")
    teacher: TeacherSpec = TeacherSpec()
    paths: list[str] | None = Field(
        default=None,
        description="text: files or globs; tokens: one .bin/.npy file "
        "or a `lwscale data prepare` directory (lwscale.data.files)",
    )
    token_dtype: Literal["uint16", "uint32"] | None = Field(
        default=None, description="dtype of a bare .bin token file (a manifest.json beside it says it)"
    )

    @model_validator(mode="after")
    def _paths(self) -> DataSpec:
        if self.source in ("text", "tokens") and not self.paths:
            raise ValueError(f"source {self.source} needs data.paths")
        if self.source not in ("text", "tokens") and self.paths:
            raise ValueError(f"data.paths is for source text or tokens, not {self.source}")
        if self.source == "tokens" and len(self.paths) != 1:
            raise ValueError("source tokens reads one token file or prepared directory in data.paths")
        if self.source == "text" and self.tokenizer == "bpe" and self.vocab_size < 257:
            raise ValueError("a BPE vocab needs more than 256 tokens (use tokenizer: bytes for 256)")
        return self

    @model_validator(mode="after")
    def _vocab(self) -> DataSpec:
        if self.source == "sotu" and self.tokenizer == "bpe" and self.vocab_size < 257:
            raise ValueError("a BPE vocab needs more than 256 tokens (use tokenizer: bytes for 256)")
        return self


# ---- training ------------------------------------------------------------------------------
class TrainSpec(Strict):
    steps: Annotated[int, Field(ge=1)] | list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        description="optimizer steps per cell (1000 if no budget is given); a list of horizons "
        "trains every width at every one (docs/science.md §4)",
    )
    base_steps: int | None = Field(
        default=None,
        ge=1,
        le=MAX_STEPS,
        description="the base horizon S0 where (eta, lambda) are "
        "written: a rule's horizon exponent scales by (S/S0); default: the shortest",
    )
    steps_by_width: dict[int, list[int]] | None = Field(
        default=None,
        description="which of the horizons each width trains, e.g. {32: [500], 128: [2000]}; a width "
        "not named trains every horizon (default: all)",
    )
    tokens: int | None = Field(default=None, ge=1, description="token budget per cell; alternative to steps")
    steps_width_exponent: float = Field(
        default=0.0, description="steps(d) = steps * m**p; 0 = same budget at every width"
    )
    batch_size: int = Field(default=32, ge=1, le=2**20, description="sequences per step, per cell")
    warmup: float = Field(default=0.05, ge=0, description="warmup steps, or a fraction of steps if < 1")
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="final lr / peak lr (cosine and wsd)")
    decay_frac: float = Field(default=0.2, gt=0, le=1, description="wsd: fraction of steps spent decaying")
    grad_clip: float | None = Field(default=1.0, gt=0, description="per-cell gradient-norm clip; null = off")
    eval_interval: int = Field(
        default=100,
        ge=1,
        description="steps between validation evaluations at the base "
        "horizon; scaled with the horizon, so every horizon gets as many",
    )
    eval_tokens: int = Field(default=65536, ge=1, le=2**40, description="size of the fixed validation set")
    log_interval: int = Field(default=10, ge=1, description="steps between train-loss logs")
    precision: Literal["auto", "fp32", "bf16"] = Field(default="auto", description="auto = bf16 on CUDA, fp32 on CPU")
    compile: Literal["auto", True, False] = Field(default="auto", description="auto = on for CUDA, off on CPU")
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")
    seeds: list[int] = Field(default=[0], description="init + data-order seeds; tables show the mean")
    cells_per_stack: int | Literal["auto"] = Field(default="auto", description="cells trained together as one model")
    diverge_factor: float = Field(default=1.5, gt=1, description="diverged when loss > factor x initial loss")
    diagnostics: bool | Literal["full"] = Field(
        default=True,
        description="true: end sigma_max + spectra and gain at eval points; full: also sigma_max "
        "at eval points; false: off (docs/diagnostics.md)",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_budget(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("steps") is None and data.get("tokens") is None:
            return {**data, "steps": 1000}
        return data

    @field_validator("steps", mode="before")
    @classmethod
    def _horizons(cls, v: Any) -> Any:
        """A list of horizons, sorted; a one-element list is the plain number (the same cells)."""
        if isinstance(v, (list, tuple)):
            if not v:
                raise ValueError("the list of horizons is empty")
            bad = [x for x in v if not (isinstance(x, int) and not isinstance(x, bool) and x >= 1)]
            if bad:
                raise ValueError(f"horizons must be whole numbers of steps, at least 1; got {bad[0]!r}")
            if len(set(v)) != len(v):
                raise ValueError("horizons are repeated")
            return v[0] if len(v) == 1 else sorted(v)
        return v

    @model_validator(mode="after")
    def _budget(self) -> TrainSpec:
        if self.steps is not None and self.tokens is not None:
            raise ValueError("give either train.steps or train.tokens, not both")
        if self.steps_by_width is not None:
            if not self.steps_by_width:
                raise ValueError("steps_by_width is empty; leave it out to train every width at every horizon")
            have = set(self.horizon_list())
            for w, hs in self.steps_by_width.items():
                if not hs:
                    raise ValueError(f"steps_by_width {w}: at least one horizon is needed")
                other = sorted(set(hs) - have)
                if other:
                    raise ValueError(f"steps_by_width {w}: {other[0]} is not one of train.steps")
        if isinstance(self.steps, list) and self.warmup >= 1 and self.warmup >= self.steps[0]:
            raise ValueError(
                f"warmup {self.warmup:g} steps is not shorter than the shortest horizon "
                f"{self.steps[0]}; write it as a fraction (< 1) to scale with each horizon"
            )
        if not self.seeds or any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be a non-empty list of distinct non-negative integers")
        if any(s >= 2**63 for s in self.seeds):
            raise ValueError("seeds must be below 2**63")
        if isinstance(self.cells_per_stack, int) and self.cells_per_stack < 1:
            raise ValueError("cells_per_stack must be at least 1 or 'auto'")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        return self

    def horizon_list(self) -> list[int] | None:
        """The horizons written in ``steps`` (None for a ``tokens`` budget: one horizon)."""
        if self.steps is None:
            return None
        return list(self.steps) if isinstance(self.steps, list) else [self.steps]


class OptimizerSpec(Strict):
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(default=1e-8, gt=0)
    wd_mode: Literal["coupled", "independent"] = Field(
        default="coupled", description="coupled: p -= lr*wd*p (torch AdamW); independent: wd is lr_peak*wd"
    )

    @field_validator("betas")
    @classmethod
    def _betas(cls, v):
        if not all(0 <= b < 1 for b in v):
            raise ValueError("betas must lie in [0, 1)")
        return v


# ---- grid and rules ------------------------------------------------------------------------
class Log2Range(Strict):
    log2: tuple[float, float] = Field(description="[low, high] exponents of 2, inclusive")
    points: int = Field(ge=1, le=10_000)

    @field_validator("log2")
    @classmethod
    def _exponents(cls, v):
        if not all(-MAX_LOG2 <= x <= MAX_LOG2 for x in v):
            raise ValueError(f"exponents of 2 must lie in [-{MAX_LOG2}, {MAX_LOG2}], got {list(v)}")
        return v

    def values(self) -> list[float]:
        lo, hi = self.log2
        if self.points == 1:
            return [2.0**lo]
        return [2.0 ** (lo + (hi - lo) * i / (self.points - 1)) for i in range(self.points)]


Axis = Union[list[float], Log2Range]


def _axis(v: Any) -> Any:
    """A grid axis: a list of numbers, or {log2: [lo, hi], points: n}; one clear message otherwise."""
    if v is None:
        return v
    if isinstance(v, dict):
        try:
            return Log2Range.model_validate(v)
        except ValidationError as exc:
            e = exc.errors()[0]
            key = ".".join(str(x) for x in e["loc"])
            raise ValueError(f"{key}: {e['msg']}" if key else e["msg"]) from None
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        if not v:
            raise ValueError("the axis is empty")
        try:
            return [float(x) for x in v]
        except OverflowError:
            raise ValueError("a number on the axis is too large for a float") from None
    raise ValueError("must be a list of numbers or {log2: [low, high], points: n}")


class GridSpec(Strict):
    """Base coordinates (eta, lambda) at the base width: a product of two axes, or pairs."""

    eta: Axis | None = None
    wd: Axis | None = None
    pairs: list[tuple[float, float]] | None = Field(default=None, description="explicit [eta, wd] cells")

    _axes = field_validator("eta", "wd", mode="before")(classmethod(lambda cls, v: _axis(v)))

    @model_validator(mode="after")
    def _check(self) -> GridSpec:
        if self.pairs is None and (self.eta is None or self.wd is None):
            raise ValueError("give grid.eta and grid.wd (lists or {log2: [lo, hi], points: n}), or grid.pairs")
        if self.pairs is not None and (self.eta is not None or self.wd is not None):
            raise ValueError("give either grid.pairs or grid.eta/grid.wd, not both")
        if self.pairs is None and len(self.axis("eta")) * len(self.axis("wd")) > MAX_POINTS:
            raise ValueError(f"the grid has more than {MAX_POINTS:,} points; surely a mistake")
        for eta, wd in self.points():
            if not (math.isfinite(eta) and eta > 0):
                raise ValueError(f"grid learning rates must be positive, got {eta}")
            if not (math.isfinite(wd) and wd >= 0):
                raise ValueError(f"grid weight decays must be non-negative, got {wd}")
        if not self.points():
            raise ValueError("the grid is empty")
        return self

    def axis(self, which: str) -> list[float]:
        a = getattr(self, which)
        return a.values() if isinstance(a, Log2Range) else list(a)

    def points(self) -> list[tuple[float, float]]:
        if self.pairs is not None:
            return [(float(e), float(w)) for e, w in self.pairs]
        return [(e, w) for w in self.axis("wd") for e in self.axis("eta")]


class CustomRule(Strict):
    name: Literal["custom"] = "custom"
    a: float = Field(default=1.0, description="matrix lr ~ m**-a")
    g: float = Field(description="matrix wd ~ m**g")
    h: float = Field(default=0.0, description="matrix wd ~ (S/S0)**-h across horizons")
    h_lr: float = Field(default=0.0, description="every lr ~ (S/S0)**-h_lr across horizons")


RuleSpec = Union[str, CustomRule]


class SlurmSpec(Strict):
    """How ``runner: {kind: slurm}`` asks Slurm for each task of its job array (via submitit)."""

    partition: str | None = Field(default=None, description="sbatch --partition; null = the cluster's default")
    time_minutes: int = Field(default=240, ge=1, description="sbatch --time per task, in minutes")
    gpus_per_task: int = Field(default=1, ge=0, description="GPUs per task (one task trains one stack)")
    cpus_per_task: int | None = Field(default=None, ge=1, description="sbatch --cpus-per-task; null = default")
    mem_gb: float | None = Field(default=None, gt=0, description="sbatch --mem in GB; null = default")
    account: str | None = Field(default=None, description="sbatch --account")
    qos: str | None = Field(default=None, description="sbatch --qos")
    max_parallel: int | None = Field(default=None, ge=1, description="tasks running at once (--array=..%N)")
    extra_sbatch: dict[str, Union[str, int, float, bool]] = Field(
        default={}, description="more sbatch flags, e.g. {constraint: h100, exclusive: true}"
    )
    setup: list[str] = Field(default=[], description="shell lines run before each task (module load, venv)")


class RunnerSpec(Strict):
    """Where cells train; none of this changes a cell's id or its result."""

    kind: Literal["local", "gpus", "slurm"] = Field(
        default="local", description="local: this process; gpus: one worker per visible GPU; slurm: a job array"
    )
    workers: int | None = Field(default=None, ge=1, description="gpus: worker count; null = one per visible GPU")
    checkpoint_minutes: float | None = Field(
        default=30.0, ge=0, description="save a stack's state every N minutes; 0 = every step; null = never"
    )
    keep_checkpoints: bool = Field(default=False, description="keep a stack's checkpoint after it finishes")
    claim_timeout_minutes: float = Field(
        default=10.0,
        gt=0,
        le=MAX_TIMEOUT_MINUTES,
        description="a claim whose heartbeat is older than this is stale and taken over",
    )
    slurm: SlurmSpec = SlurmSpec()


class WandbSpec(Strict):
    """Weights & Biases: one W&B run per sweep, logged from the records once the sweep ends."""

    project: str = Field(min_length=1, description="the W&B project")
    entity: str | None = Field(default=None, description="the W&B entity (user or team); null = your default")
    mode: Literal["offline", "online"] = Field(
        default="offline", description="offline: files under <run>/wandb, for `wandb sync` later; online: upload"
    )


class LoggingSpec(Strict):
    """Experiment trackers (optional packages: pip install "lwscale[tracking]"). They are written
    from the records after the sweep, never from the training step; none changes a cell's id."""

    tensorboard: bool = Field(
        default=False,
        description="TensorBoard event files under <run>/tensorboard: "
        "each cell's train and validation curves, and the loss tables",
    )
    wandb: WandbSpec | None = Field(default=None, description="Weights & Biases: the curves and the results table")


class Spec(Strict):
    name: str = Field(default="sweep", pattern=r"^[A-Za-z0-9._-]+$")
    out_dir: str = "runs"
    model: ModelSpec = ModelSpec()
    data: DataSpec = DataSpec()
    train: TrainSpec = TrainSpec()
    optimizer: OptimizerSpec = OptimizerSpec()
    grid: GridSpec
    rules: list[RuleSpec] = Field(default=["sqrt-wd"])
    runner: RunnerSpec = RunnerSpec()
    logging: LoggingSpec = LoggingSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if set(v) == {"."}:  # "." and ".." name the out_dir itself or its parent, not a run in it
            raise ValueError(f"{v!r} is not a run name (letters, digits, '.', '_' and '-', not only dots)")
        return v

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, v: Any) -> list:
        if not isinstance(v, list) or not v:
            raise ValueError("must be a non-empty list of rule names")
        out = []
        for r in v:
            if isinstance(r, str) and r in PRESETS:
                out.append(r)
            elif isinstance(r, str):  # a label: sqrt-wd(h=1), custom(a=1,g=0.5,h=1)
                try:
                    out.append(get_rule(r).label())
                except RuleError as exc:
                    raise ValueError(str(exc)) from None
            elif isinstance(r, dict) and r.get("name") == "custom":
                try:
                    out.append(CustomRule.model_validate(r))
                except ValidationError as exc:
                    e = exc.errors()[0]
                    raise ValueError(f"custom rule: {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
            else:
                raise ValueError(
                    f"unknown rule {r!r}; choose from {', '.join(PRESETS)}, a preset with horizon "
                    "exponents such as sqrt-wd(h=1), or {name: custom, a: .., g: .., h: ..}"
                )
        return out

    @model_validator(mode="after")
    def _sizes(self) -> Spec:
        ms = self.model
        if max(ms.widths + [ms.d0]) > MAX_WIDTH or ms.ffn_mult * max(ms.widths + [ms.d0]) > 16 * MAX_WIDTH:
            raise ValueError(f"model widths (and ffn_mult x width / 16) above {MAX_WIDTH:,} are not supported")
        if ms.depth > MAX_DEPTH:
            raise ValueError(f"model.depth above {MAX_DEPTH} is not supported")
        extra = sorted(set(self.train.steps_by_width or {}) - set(ms.widths))
        if extra:
            raise ValueError(f"train.steps_by_width names width {extra[0]}, which is not one of model.widths")
        try:
            steps = max(self.steps_at(w, h) for w in ms.widths for h in self.horizons_at(w))
        except (OverflowError, ValueError):
            steps = math.inf
        if steps > MAX_STEPS:
            raise ValueError(
                f"train: more than {MAX_STEPS:,} steps per cell (check steps, tokens and steps_width_exponent)"
            )
        runs = sum(len(self.horizons_at(w)) for w in ms.widths)
        n = len(self.grid.points()) * len(self.train.seeds) * runs * len(self.rules)
        if n > MAX_POINTS:
            raise ValueError(
                f"the sweep has {n:,} points (grid x seeds x widths x horizons x rules); more than "
                f"{MAX_POINTS:,} is surely a mistake"
            )
        return self

    def rule_objects(self) -> list[Rule]:
        out = []
        for r in self.rules:
            out.append(get_rule(r) if isinstance(r, str) else custom(r.a, r.g, r.h, r.h_lr))
        labels = [r.label() for r in out]
        if len(set(labels)) != len(labels):
            raise SpecError("rules are repeated")
        return out

    # ---- horizons (docs/science.md §4) ----------------------------------------------
    def horizons(self) -> list[int]:
        """The training lengths S written in ``train.steps`` (steps at the base width), shortest
        first; one for a single number or a ``tokens`` budget."""
        t = self.train
        return t.horizon_list() or [max(1, t.tokens // (t.batch_size * self.model.seq_len))]

    @property
    def multi_horizon(self) -> bool:
        return len(self.horizons()) > 1

    def base_horizon(self) -> int:
        """S0: ``train.base_steps``, or the shortest horizon. Base coordinates (eta, lambda) are
        the values at the base width *and* the base horizon."""
        return self.train.base_steps or self.horizons()[0]

    def horizons_at(self, width: int) -> list[int]:
        """The horizons ``width`` trains: ``train.steps_by_width`` when it names the width, else all."""
        by = self.train.steps_by_width or {}
        return sorted(by[width]) if width in by else self.horizons()

    def steps_at(self, width: int, horizon: int | None = None) -> int:
        """Optimizer steps of a cell at ``width`` and ``horizon`` (default: the base horizon):
        the horizon times m**steps_width_exponent."""
        base = self.base_horizon() if horizon is None else horizon
        return max(1, round(base * (width / self.model.d0) ** self.train.steps_width_exponent))

    def horizon_ratio(self, width: int, steps: int) -> float:
        """rho = S/S0 of a cell at ``width`` trained ``steps`` steps: its steps over what that
        width trains at the base horizon (so ``steps_width_exponent`` stays on the width axis).
        A rule's horizon exponents scale by it; exactly 1 at the base horizon."""
        return steps / self.steps_at(width, self.base_horizon())

    def eval_interval_at(self, ratio: float) -> int:
        """Steps between evaluations of a cell whose horizon ratio S/S0 is ``ratio``
        (``horizon_ratio``): ``eval_interval`` scaled by it, so every horizon gets as many
        evaluations as the base one, where it is ``eval_interval`` itself."""
        iv = self.train.eval_interval
        return iv if ratio == 1.0 else max(1, round(iv * ratio))

    def warmup_steps(self, steps: int) -> int:
        """Warmup steps of a cell trained ``steps`` steps: a fraction (< 1) scales with the
        cell's steps, so with its horizon; a whole number is the same at every horizon."""
        w = self.train.warmup
        return int(round(w * steps)) if w < 1 else int(w)


# ---- loading -------------------------------------------------------------------------------
def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The 1-based YAML line of a key path like ('model', 'widths', 0), as deep as it exists."""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == key), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


_UNION_TAGS = ("int", "str", "float", "bool", "Log2Range", "CustomRule", "constrained-int")


def _describe(err: dict) -> tuple[str, tuple, str]:
    # drop pydantic's union-member tags ('int', "literal['auto']", ...) from the key path
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and ("[" in x or x in _UNION_TAGS)))
    path = ".".join(str(x) for x in loc) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    return path, loc, msg


def parse_spec(data: Any, source: str = "<spec>", root: yaml.Node | None = None) -> Spec:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a YAML mapping of keys to values")
    try:
        spec = Spec.model_validate(data)
        spec.rule_objects()
        return spec
    except RecursionError:
        raise SpecError(f"{source}: values nested too deeply") from None
    except OverflowError as exc:  # a number a check could not compute with: too large
        raise SpecError(f"{source}: a number is too large ({exc})") from None
    except ValidationError as exc:
        path, loc, msg = _describe(exc.errors()[0])
        line = _line_of(root, loc) if root is not None else None
        where = f"{source}:{line}" if line else source
        raise SpecError(f"{where}: {path}: {msg}") from None
    except RuleError as exc:
        raise SpecError(f"{source}: rules: {exc}") from None


MAX_NESTING = 64


def _parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its data, from one parse."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return root, (None if root is None else loader.construct_document(root))
    finally:
        loader.dispose()


def _flow_depth(text: str) -> int:
    """The deepest nesting of [ ] and { } in ``text`` (quotes not parsed: an upper bound)."""
    depth = top = 0
    for m in re.finditer(r"[\[\]{}]", text):
        depth = depth + 1 if m.group() in "[{" else max(depth - 1, 0)
        top = max(top, depth)
    return top


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file; every problem becomes one readable SpecError line."""
    p = Path(path)
    if not p.exists():
        raise SpecError(f"spec file not found: {p}")
    if p.is_dir():
        raise SpecError(f"{p} is a directory, not a spec file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {p}: {exc}") from None
    depth = _flow_depth(text)
    if depth > MAX_NESTING:  # PyYAML's scanner is quadratic in it, and its composer recursive
        raise SpecError(f"{p}: malformed YAML: lists or mappings nested {depth} deep (at most {MAX_NESTING})")
    try:
        root, data = _parse_yaml(text)
    except RecursionError:
        raise SpecError(f"{p}: malformed YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise SpecError(f"{where}: malformed YAML: {problem}") from None
    return parse_spec(data, str(p), root)


def with_overrides(
    spec: Spec, source: str = "command line", dotted: dict[str, Any] | None = None, **sections: dict[str, Any]
) -> Spec:
    """``spec`` with some keys of its sections replaced, validated again, for example
    ``with_overrides(spec, train={"cells_per_stack": 4}, runner={"kind": "gpus"})``. A key
    whose value is None keeps the spec's value (a command-line option not given); a bad
    value is a one-line SpecError that names ``source``.

    ``dotted`` maps dotted keys to values, None (YAML null) included, at any depth:
    ``{"train.steps": 50, "runner.slurm.partition": "gpu"}`` (``lwscale sweep SPEC KEY=VALUE``).
    A key that has an alternative (``train.steps`` / ``train.tokens``, ``grid.pairs`` /
    ``grid.eta`` and ``grid.wd``) clears it unless that is given too, as a file that
    names only one of them would."""
    data = spec.model_dump(mode="json")
    changed = False
    for section, values in sections.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            data[section] = {**data[section], **given}
            changed = True
    for key, value in (dotted or {}).items():
        for other in ALTERNATIVES.get(key, ()):
            if other not in dotted:
                _set_dotted(data, other, None)
        _set_dotted(data, key, value)
        changed = True
    return parse_spec(data, source) if changed else spec


# keys a spec gives one of: setting one on the command line clears the others
ALTERNATIVES = {
    "train.steps": ("train.tokens",),
    "train.tokens": ("train.steps",),
    "grid.pairs": ("grid.eta", "grid.wd"),
    "grid.eta": ("grid.pairs",),
    "grid.wd": ("grid.pairs",),
}


def _set_dotted(data: dict, key: str, value: Any) -> None:
    """data[a][b][c] = value for key "a.b.c"; a section that is missing is created (and then
    refused by validation as an unknown key), one that holds a value is a SpecError."""
    *sections, last = key.split(".")
    node = data
    for i, part in enumerate(sections):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(f"{'.'.join(sections[: i + 1])} is not a section (it holds a value)")
    node[last] = value


def dump_spec(spec: Spec) -> str:
    """The resolved spec as YAML, every default written out."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
