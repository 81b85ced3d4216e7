"""Spec -> the plan: every (rule, width, horizon, eta, lambda, seed) of the sweep and the
physical cells that train them.

A *cell* is one training run, identified by a short hash of everything that affects its
result: the model it trains (including its parametrization), each parameter group's peak
lr and coupled wd, the training, optimizer and data settings, and the seed. Rule names are
not part of it: at the base width every muP rule (and SP) gives the same physical cell, so
it is trained once and shared, and a rerun or an added rule finds it already done.

Horizons (``train.steps`` as a list, docs/science.md §4): a cell's id hashes its own
steps, and the spec's settings as a single-horizon spec of that length would write them, so
a cell of a multi-horizon run has the id it would have in a run of that one length, and a
single-horizon spec's ids are those it always had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lwscale.core.errors import UserError
from lwscale.data.corpus import DATA_VERSION, content_digest
from lwscale.model.classes import GroupKey, group_hparams, group_keys
from lwscale.model.config import ModelConfig, UserModelConfig, factory_config, flops_per_token, parametrization
from lwscale.science.rules import Rule
from lwscale.science.schedule import factor_sum
from lwscale.sweep.spec import Spec

ID_VERSION = 1  # bump when the meaning of a cell id changes


@dataclass(frozen=True)
class Label:
    """How the sweep names a cell: a rule and base coordinates (eta, lambda) at a width and a
    training length (``steps``: the cell's optimizer steps)."""

    rule: str
    width: int
    eta: float
    wd: float
    seed: int
    steps: int | None = None


@dataclass(frozen=True)
class GroupHP:
    name: str  # "vector" or "matrix(m=4)"
    cls: str
    width_mult: float
    lr: float  # peak lr
    wd: float  # coupled wd
    tau: float  # 1/(lr*wd) steps
    timescales: float  # sum_t lr_t * wd


@dataclass
class Cell:
    id: str
    width: int
    seed: int
    model: ModelConfig | UserModelConfig  # lwscale's Transformer, or the spec's model.factory model
    steps: int
    warmup: int
    groups: tuple[GroupHP, ...]
    labels: list[Label] = field(default_factory=list)
    horizon_ratio: float = 1.0  # S/S0: its steps over its width's steps at the base horizon

    @property
    def rule_hparams(self) -> tuple[str, float, float, float]:
        """(rule, eta, lambda, S/S0) of the cell's first label: what ``params.stack_groups`` maps
        to its physical (lr, wd)."""
        first = self.labels[0]
        return first.rule, first.eta, first.wd, self.horizon_ratio

    def matrix_timescales(self) -> float:
        ts = [g.timescales for g in self.groups if g.cls == "matrix"]
        return min(ts) if ts else math.inf

    def matrix_tau(self) -> float:
        ts = [g.tau for g in self.groups if g.cls == "matrix"]
        return max(ts) if ts else math.inf

    def stack_key(self) -> tuple:
        """Cells with equal keys can share one stacked model."""
        return (self.model, self.steps, self.warmup)


@dataclass
class Plan:
    spec: Spec
    cells: list[Cell]  # unique physical cells
    labels: list[tuple[Label, str]]  # every sweep point -> cell id

    def by_id(self) -> dict[str, Cell]:
        return {c.id: c for c in self.cells}


def result_settings(spec: Spec) -> dict:
    """The spec settings that change a cell's result, widths, grid, seeds, rules and which
    horizons each width trains aside. A run directory refuses a spec whose settings differ
    from its own (so a different list of horizons, or base horizon, is a new run)."""
    ms, t = spec.model, spec.train
    return {
        "id_version": ID_VERSION,
        "data_version": DATA_VERSION,
        "model": ms.model_dump(mode="json", exclude={"widths"} | _unset(ms, "factory", "loss")) | {"base_width": ms.d0},
        "data": spec.data.model_dump(mode="json", exclude=_unset(spec.data, "paths", "token_dtype")),
        "train": t.model_dump(
            mode="json",
            exclude={
                "seeds",
                "cells_per_stack",
                "compile",
                "device",
                "log_interval",
                "eval_interval",
                "diagnostics",
                "steps_by_width",
            }
            | _unset(t, "base_steps"),
        ),
        "optimizer": spec.optimizer.model_dump(mode="json"),
    }


def cell_settings(spec: Spec, horizon: int) -> dict:
    """What a cell id hashes of the spec for a cell at ``horizon``: ``result_settings`` as a
    spec of that one length writes them (``steps`` the horizon, no ``base_steps``: the base
    horizon acts through the physical lr and wd, which are hashed themselves). For a
    single-horizon spec without ``base_steps`` this is ``result_settings`` unchanged."""
    s = result_settings(spec)
    if not spec.multi_horizon and spec.train.base_steps is None:
        return s
    train = {k: v for k, v in s["train"].items() if k != "base_steps"}
    if spec.multi_horizon:
        train["steps"] = horizon
    return {**s, "train": train}


def _unset(obj, *keys: str) -> set[str]:
    """Fields added later that are left at None: kept out of ids, so existing ids stay stable."""
    return {k for k in keys if getattr(obj, k) is None}


def model_config(spec: Spec, width: int, rule: Rule, vocab_size: int | None = None) -> ModelConfig | UserModelConfig:
    ms = spec.model
    if vocab_size is None and spec.data.source in ("text", "tokens"):
        from lwscale.data.files import source_vocab_size  # reads the user's files (and imports torch)

        vocab_size = source_vocab_size(spec.data)
    v = vocab_size or (256 if spec.data.tokenizer == "bytes" and spec.data.source == "sotu" else spec.data.vocab_size)
    if ms.factory:  # a user's model (lwscale.model.user): width, base width, vocab and seq_len
        return parametrization(factory_config(spec, width, v), rule.mup)
    cfg = ModelConfig(
        vocab_size=v,
        width=width,
        base_width=ms.d0,
        depth=ms.depth,
        head_dim=ms.head_dim,
        ffn_mult=ms.ffn_mult,
        seq_len=ms.seq_len,
        init_std=ms.init_std,
        rope_theta=ms.rope_theta,
        attn_scale=ms.attn_scale,
        tie_embeddings=ms.tie_embeddings,
        readout_zero_init=ms.readout_zero_init,
        unembed_class=ms.unembed_class,
    )
    return parametrization(cfg, rule.mup)


def model_flops_per_token(spec: Spec, cfg: ModelConfig | UserModelConfig) -> float:
    """Training FLOPs per token of the model a cell of ``cfg`` trains: lwscale's Transformer
    (``config.flops_per_token``), or the spec's factory model (6N, ``user.flops_per_token``:
    builds it on the meta device, so only the sweep calls it, never a read-only command)."""
    if spec.model.factory:
        from lwscale.model.user import flops_per_token as user_flops_per_token  # torch: builds the model

        return user_flops_per_token(spec, cfg)
    return flops_per_token(cfg)


def _round(x: float) -> float:
    return float(f"{x:.10g}")


def classes_key(cfg: ModelConfig | UserModelConfig) -> str:
    """What a model's classes depend on besides the spec: its width, base width and vocabulary."""
    return f"{cfg.width}/{cfg.base_width}/{cfg.vocab_size}"


def param_classes(spec: Spec, cfg: ModelConfig | UserModelConfig, recorded: dict | None = None) -> list:
    """The parameter classes (``classes.ParamInfo``) of the model a cell of ``cfg`` trains: the
    built-in Transformer, or the spec's ``model.factory`` model (lwscale.model.user). A reader
    passes ``recorded`` (the run's plan.json, ``Store.read_classes``): a factory model's classes
    are then read from it, so that no read-only command runs the user's code, and the built-in
    model's where it holds them, so that reading a run builds no model (and imports no torch)."""
    if spec.model.factory:
        if recorded is not None:
            if classes_key(cfg) not in recorded:
                raise UserError(
                    f"the parameter classes of the model.factory model at width {cfg.width} are not in this run's "
                    "plan.json, and read-only commands never run your model code: run `lwscale sweep` on a spec "
                    "with that width (cells already finished are not retrained) to record them"
                )
            return recorded[classes_key(cfg)]
        from lwscale.model.user import classify_factory  # torch: builds the model

        return classify_factory(spec, cfg)
    if recorded and classes_key(cfg) in recorded:
        return recorded[classes_key(cfg)]
    import torch

    from lwscale.model.params import classify_model
    from lwscale.model.transformer import Transformer

    with torch.device("meta"):
        return classify_model(Transformer(cfg), spec.model.unembed_class)


def make_plan(spec: Spec) -> Plan:
    rules = spec.rule_objects()
    settings = {h: cell_settings(spec, h) for h in spec.horizons()}
    t, opt = spec.train, spec.optimizer
    cells: dict[str, Cell] = {}
    labels: list[tuple[Label, str]] = []
    keys_cache: dict[ModelConfig, dict[GroupKey, list[str]]] = {}
    for rule in rules:
        for width in spec.model.widths:
            cfg = model_config(spec, width, rule)
            if cfg not in keys_cache:
                keys_cache[cfg] = group_keys(param_classes(spec, cfg))
            for horizon in spec.horizons_at(width):
                steps = spec.steps_at(width, horizon)
                warmup = spec.warmup_steps(steps)
                rho = spec.horizon_ratio(width, steps)
                fsum = factor_sum(steps, warmup, t.schedule, t.min_lr_ratio, t.decay_frac)
                for eta, lam in spec.grid.points():
                    groups = []
                    for key in keys_cache[cfg]:
                        lr, wd = group_hparams(key, rule, eta, lam, opt.wd_mode, spec.model.vector_lr_mult, rho)
                        tau = math.inf if lr * wd == 0 else 1.0 / (lr * wd)
                        groups.append(GroupHP(key.label(), key.cls, key.width_mult, lr, wd, tau, lr * wd * fsum))
                    groups.sort(key=lambda g: g.name)
                    for seed in t.seeds:
                        cid = content_digest(
                            settings[horizon],
                            cfg.to_dict(),
                            steps,
                            warmup,
                            seed,
                            [(g.name, _round(g.lr), _round(g.wd)) for g in groups],
                        )
                        if cid not in cells:
                            cells[cid] = Cell(cid, width, seed, cfg, steps, warmup, tuple(groups), horizon_ratio=rho)
                        label = Label(rule.label(), width, eta, lam, seed, steps)
                        cells[cid].labels.append(label)
                        labels.append((label, cid))
    return Plan(spec, list(cells.values()), labels)


def grid_centre(spec: Spec) -> tuple[float, float]:
    """The geometric centre of the grid in base coordinates."""
    pts = spec.grid.points()
    etas = sorted({e for e, _ in pts})
    wds = sorted({w for _, w in pts if w > 0}) or [0.0]
    return etas[len(etas) // 2], wds[len(wds) // 2]


def reference_name(spec: Spec) -> str:
    """What ``centre_cells`` picks: the grid's centre, or for explicit pairs the slowest pair
    (the one that completes the fewest timescales, which sizes the run)."""
    return "the slowest pair" if spec.grid.pairs is not None else "the grid centre"


def centre_cells(plan: Plan) -> list[tuple[str, int, Cell]]:
    """(rule, width, cell) at the grid's centre for every rule, width and horizon (seed: the
    first; the cell's ``steps`` says its horizon);
    for a ``grid.pairs`` spec, the pair whose cell completes the fewest matrix timescales (a
    pair with wd = 0 only when every pair has it: it has no steady state to reach)."""
    by_id = plan.by_id()
    if plan.spec.grid.pairs is not None:

        def pace(c: Cell) -> tuple[bool, float]:  # a pair without wd never reaches steady state: last
            return c.matrix_timescales() == 0, c.matrix_timescales()

        slowest: dict[tuple[str, int, int | None], Cell] = {}
        for lab, cid in plan.labels:
            c, key = by_id[cid], (lab.rule, lab.width, lab.steps)
            if key not in slowest or pace(c) < pace(slowest[key]):
                slowest[key] = c
        return [(rule, width, c) for (rule, width, _), c in slowest.items()]
    eta_c, wd_c = grid_centre(plan.spec)
    out, seen = [], set()
    for lab, cid in plan.labels:
        key = (lab.rule, lab.width, lab.steps)
        if key not in seen and lab.eta == eta_c and lab.wd == wd_c:
            seen.add(key)
            out.append((lab.rule, lab.width, by_id[cid]))
    return out
