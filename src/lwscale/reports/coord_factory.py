"""``lwscale coord-check`` on a user's model (``model.factory``).

The same check as ``coord.py`` but through the factory: at every width and seed the
spec's ``build(width)`` gives the model (lwscale.factory.build_user_stack, as a sweep cell
builds it), trained for a few steps with the rule's per-class lr and wd at base
coordinates (eta, wd) and the sweep's optimizer. Forward hooks record the mean |output|
of every module that owns parameters, named by type (``lwscale.diagnostics.user_types``:
``blocks.0.fc`` and ``blocks.1.fc`` are both ``fc``, averaged over blocks), and of the
whole model (``logits``). ``lwscale.factory.mup_problems`` says which muP pieces the model
lacks (for example a readout without its 1/m multiplier: its logits then grow with width).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from ..diagnostics import user_types
from .coord import CoordData, _abs_mean, train_steps

LOGITS = "logits"


def module_types(module: torch.nn.Module) -> dict[str, str]:
    """{module name: type} of the submodules that own parameters themselves."""
    owners = [n for n, m in module.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    return {n: t for n, t in zip(owners, user_types([f"{n}.weight" for n in owners]).values())}


def _follow(spec, cfg, rule, eta, wd, batches, steps, seed, vals, i, n_widths, n_seeds) -> None:
    """Train the factory model of ``cfg`` for ``steps`` steps under ``seed``, adding its
    mean |activation| per module type / n_seeds into vals[type][i]."""
    from ..factory import build_user_stack
    from ..optim import StackedAdamW
    from ..params import stack_groups

    stack, infos = build_user_stack(spec, cfg, [seed], torch.device("cpu"))
    groups = stack_groups(stack, infos, [(rule, eta, wd)], spec.optimizer.wd_mode, spec.model.vector_lr_mult)
    opt = StackedAdamW(groups, 1, betas=tuple(spec.optimizer.betas), eps=spec.optimizer.eps,
                       max_grad_norm=spec.train.grad_clip)
    seen: dict[str, list[float]] = defaultdict(list)

    def rec(name):
        def fn(mod, inp, out):
            if torch.is_tensor(out) and out.is_floating_point():
                seen[name].append(_abs_mean(out))
        return fn

    modules = dict(stack.module.named_modules())
    hooks = [modules[n].register_forward_hook(rec(t)) for n, t in module_types(stack.module).items()]
    hooks.append(stack.module.register_forward_hook(rec(LOGITS)))

    def record(step: int) -> None:
        for t, v in seen.items():
            vals.setdefault(t, np.zeros((n_widths, steps)))[i, step] += float(np.mean(v)) / n_seeds

    train_steps(stack, opt, batches, steps, seen, record, hooks)


def factory_coord_data(spec, rule, eta: float, wd: float, batches, steps: int, seeds, vocab_size: int,
                       problems: list[str] | None = None) -> CoordData:
    """CoordData of one rule on the factory model at the spec's widths, averaged over seeds."""
    from ..plan import model_config
    from ..rules import get_rule

    rule = get_rule(rule)
    widths = sorted(spec.model.widths)
    vals: dict[str, np.ndarray] = {}
    for i, width in enumerate(widths):
        cfg = model_config(spec, width, rule, vocab_size)
        for seed in seeds:
            _follow(spec, cfg, rule, eta, wd, lambda step: batches(seed, step), steps, seed, vals, i, len(widths),
                    len(seeds))
    return CoordData(rule.label(), rule.mup, widths, vals, list(problems or []))


def factory_problems(spec, vocab_size: int) -> list[str]:
    """The muP pieces the factory model lacks (lwscale.api.check_mup), as sentences."""
    from ..factory import factory_config, mup_problems

    return mup_problems(spec, factory_config(spec, spec.model.d0, vocab_size))
