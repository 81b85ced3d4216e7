"""The measurements of ``lwscale coord-check SPEC``: microsoft/mup's coordinate check, on our model or
the user's (``model.factory``). The table and figure are lwscale/reports/coord.py.

For every rule and width of the spec, build the cell (the spec's model, data and seed),
train it for a few steps at a constant lr (base coordinates (eta, wd); no warmup), and
record the mean |activation| of each module type at every step's forward pass:
``embed`` (the block input), the seven matrix types (block-averaged outputs), ``block``
(the residual stream after each block, averaged) and ``logits``. Under a muP rule these
stay put as the width grows (spread = max/min across widths within about 1.2x); under SP
they grow with width.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from lwscale.core.errors import UserError
from lwscale.data.load import load_dataset
from lwscale.model.config import MATRIX_TYPES, factory_config, matrix_type, user_types
from lwscale.model.params import classify_model, stack_groups
from lwscale.model.transformer import StackedLinear, build
from lwscale.model.user import build_user_stack, mup_problems
from lwscale.science.rules import get_rule
from lwscale.sweep.plan import grid_centre, model_config
from lwscale.training.optim import StackedAdamW

COORD_TYPES = ("embed",) + MATRIX_TYPES + ("block", "logits")
MUP_SPREAD = 1.2  # microsoft/mup's tolerance between widths
FACTORY_STEPS = 10  # default --steps for a model.factory model (below)


@dataclass
class CoordData:
    rule: str
    mup: bool
    widths: list[int]
    values: dict[str, np.ndarray]  # type -> [n_widths, steps] of mean |activation|, mean over seeds
    problems: list[str] = field(default_factory=list)  # muP pieces a factory model lacks (check_mup)

    def level(self, t: str) -> np.ndarray:
        """Mean |activation| of type t per width, averaged over the steps after the first
        update (steps 1..n-1; step 0 alone when n = 1), as microsoft/mup's plots read."""
        v = self.values[t]
        return v[:, 1:].mean(1) if v.shape[1] > 1 else v[:, 0]

    def spread(self, t: str) -> float:
        """max/min across widths of ``level(t)``."""
        lv = self.level(t)
        return float(lv.max() / lv.min())


def _abs_mean(t: torch.Tensor) -> float:
    return float(t.detach().float().abs().mean())


@torch.no_grad()
def _no_grad_logits(model, h):
    return model.logits(h)


def coord_data(
    model_cfgs: dict[int, object],
    rule,
    eta: float,
    wd: float,
    batches,
    steps: int,
    unembed_class: str = "vector",
    wd_mode: str = "coupled",
    vector_lr_mult: float = 1.0,
    grad_clip: float | None = 1.0,
    seeds: tuple[int, ...] = (0,),
    adam: dict | None = None,
) -> CoordData:
    """Mean |activation| per module type at each of ``steps`` training steps at every width,
    averaged over ``seeds`` (init and data). ``model_cfgs``: width -> ModelConfig (K = 1);
    ``batches(seed, step)`` -> tokens [1, B, T+1]; ``adam``: the optimizer's betas and eps."""
    rule = get_rule(rule)
    widths = sorted(model_cfgs)

    def setup(width: int, seed: int):
        model = build(model_cfgs[width], seeds=[seed])
        groups = stack_groups(model, classify_model(model, unembed_class), [(rule, eta, wd)], wd_mode, vector_lr_mult)
        return model, groups, lambda seen: _hooks(model, seen)

    vals = {t: np.zeros((len(widths), steps)) for t in COORD_TYPES}  # every type, in this order
    follow(widths, seeds, steps, setup, batches, grad_clip, adam or {}, vals)
    return CoordData(rule.label(), rule.mup, widths, vals)


def _hooks(model, seen: dict) -> list:
    """Forward hooks on our model appending each COORD_TYPES module's mean |output| to seen[type]."""

    def rec(name):
        return lambda mod, inp, out: seen[name].append(_abs_mean(out))

    hooks = [model.blocks[0].register_forward_pre_hook(lambda mod, inp: seen["embed"].append(_abs_mean(inp[0])))]
    hooks += [
        m.register_forward_hook(rec(matrix_type(f"{n}.weight")))
        for n, m in model.named_modules()
        if isinstance(m, StackedLinear) and matrix_type(f"{n}.weight")
    ]
    hooks += [b.register_forward_hook(rec("block")) for b in model.blocks]
    hooks.append(
        model.norm.register_forward_hook(
            lambda mod, inp, out: seen["logits"].append(_abs_mean(_no_grad_logits(model, out)))
        )
    )
    return hooks


def follow(
    widths: list[int],
    seeds,
    steps: int,
    setup,
    batches,
    grad_clip: float | None,
    adam: dict,
    vals: dict[str, np.ndarray],
) -> None:
    """The coordinate check's loop, for our model and a factory model alike: at every width
    and seed, ``setup(width, seed)`` gives (a K = 1 model, its AdamW param groups, ``hook``),
    and ``hook(seen)`` registers forward hooks appending each module type's mean |activation|
    to seen[type]. The model trains ``steps`` constant-lr steps on ``batches(seed, step)``;
    after each forward pass the mean over a type's modules / len(seeds) is added into
    vals[type][width index, step] (a type not yet in ``vals`` gets zeros first)."""
    for i, width in enumerate(widths):
        for seed in seeds:
            model, groups, hook = setup(width, seed)
            opt = StackedAdamW(groups, 1, max_grad_norm=grad_clip, **adam)
            seen: dict[str, list[float]] = defaultdict(list)

            def record(step: int) -> None:
                for t, v in seen.items():
                    vals.setdefault(t, np.zeros((len(widths), steps)))[i, step] += float(np.mean(v)) / len(seeds)

            train_steps(model, opt, lambda step: batches(seed, step), steps, seen, record, hook(seen))


def train_steps(model, opt, batches, steps: int, seen: dict, record, hooks) -> None:
    """``steps`` constant-lr steps of a K = 1 stack; after each forward pass (hooks filling
    ``seen``) ``record(step)``; the hooks are removed at the end."""
    try:
        for step in range(steps):
            seen.clear()
            tokens = batches(step)
            loss = model(tokens[..., :-1], tokens[..., 1:])
            record(step)
            loss.sum().backward()
            opt.step(1.0)
            opt.zero_grad()
    finally:
        for h in hooks:
            h.remove()


def coord_check(spec, steps: int = 4, eta: float | None = None, n_seeds: int = 3) -> list[CoordData]:
    """The coordinate check of every rule of a spec, at its widths, on its data, averaged
    over ``n_seeds`` seeds (the spec's first seed and the next ones). A spec with a
    ``model.factory`` is checked on that model (below)."""
    ms, t = spec.model, spec.train
    if eta is not None and not eta > 0:
        raise UserError(f"--eta must be positive, got {eta}")
    eta = eta if eta is not None else max(e for e, _ in spec.grid.points())
    wd = grid_centre(spec)[1]
    seeds = tuple(range(t.seeds[0], t.seeds[0] + n_seeds))
    data = load_dataset(
        spec.data,
        ms.seq_len,
        t.batch_size,
        t.eval_tokens,
        torch.device("cpu"),
        max_width=max(ms.widths),
        depth=ms.depth,
        head_dim=ms.head_dim,
    )
    data.prepare(list(seeds), steps)
    batches = lambda seed, step: torch.from_numpy(data.train_batch(seed, step).astype(np.int64)).unsqueeze(0)  # noqa: E731
    if ms.factory:
        problems = factory_problems(spec, data.vocab_size)
        return [
            factory_coord_data(spec, rule, eta, wd, batches, steps, seeds, data.vocab_size, problems)
            for rule in spec.rule_objects()
        ]
    out = []
    for rule in spec.rule_objects():
        cfgs = {w: model_config(spec, w, rule, data.vocab_size) for w in ms.widths}
        out.append(
            coord_data(
                cfgs,
                rule,
                eta,
                wd,
                batches,
                steps,
                ms.unembed_class,
                spec.optimizer.wd_mode,
                ms.vector_lr_mult,
                t.grad_clip,
                seeds,
                {"betas": tuple(spec.optimizer.betas), "eps": spec.optimizer.eps},
            )
        )
    return out


# ---- a user's model (model.factory) ------------------------------------------------------------
# The same check through the factory: at every width and seed the spec's ``build(width)`` gives the
# model (lwscale/model/user.py build_user_stack, as a sweep cell builds it). Forward hooks record the
# mean |output| of every module that owns parameters, named by type (lwscale/training/recorder.py
# user_types: ``blocks.0.fc`` and ``blocks.1.fc`` are both ``fc``), and of the whole model (``logits``);
# factory_problems says which muP pieces the model lacks.
LOGITS = "logits"


def module_types(module: torch.nn.Module) -> dict[str, str]:
    """{module name: type} of the submodules that own parameters themselves."""
    owners = [n for n, m in module.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    return {n: t for n, t in zip(owners, user_types([f"{n}.weight" for n in owners]).values())}


def _user_hooks(module: torch.nn.Module, seen: dict) -> list:
    """Forward hooks appending the mean |output| of every parameter-owning submodule (by
    type) and of the whole model (``logits``) to seen[type]; non-float outputs are skipped."""

    def rec(name):
        def fn(mod, inp, out):
            if torch.is_tensor(out) and out.is_floating_point():
                seen[name].append(_abs_mean(out))

        return fn

    modules = dict(module.named_modules())
    hooks = [modules[n].register_forward_hook(rec(t)) for n, t in module_types(module).items()]
    hooks.append(module.register_forward_hook(rec(LOGITS)))
    return hooks


def factory_coord_data(
    spec, rule, eta: float, wd: float, batches, steps: int, seeds, vocab_size: int, problems: list[str] | None = None
) -> CoordData:
    """CoordData of one rule on the factory model at the spec's widths, averaged over seeds:
    the model built as a sweep cell builds it (lwscale.model.user.build_user_stack) and trained
    with the sweep's optimizer settings, through coord.follow."""
    rule = get_rule(rule)
    widths = sorted(spec.model.widths)

    def setup(width: int, seed: int):
        stack, infos = build_user_stack(spec, model_config(spec, width, rule, vocab_size), [seed], torch.device("cpu"))
        groups = stack_groups(stack, infos, [(rule, eta, wd)], spec.optimizer.wd_mode, spec.model.vector_lr_mult)
        return stack, groups, lambda seen: _user_hooks(stack.module, seen)

    vals: dict[str, np.ndarray] = {}
    follow(
        widths,
        seeds,
        steps,
        setup,
        batches,
        spec.train.grad_clip,
        {"betas": tuple(spec.optimizer.betas), "eps": spec.optimizer.eps},
        vals,
    )
    return CoordData(rule.label(), rule.mup, widths, vals, list(problems or []))


def factory_problems(spec, vocab_size: int) -> list[str]:
    """The muP pieces the factory model lacks (lwscale.model.mup.check_mup), as sentences."""
    return mup_problems(spec, factory_config(spec, spec.model.d0, vocab_size))
