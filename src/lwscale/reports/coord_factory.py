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

import numpy as np
import torch

from ..diagnostics import user_types
from .coord import CoordData, _abs_mean, follow

LOGITS = "logits"


def module_types(module: torch.nn.Module) -> dict[str, str]:
    """{module name: type} of the submodules that own parameters themselves."""
    owners = [n for n, m in module.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    return {n: t for n, t in zip(owners, user_types([f"{n}.weight" for n in owners]).values())}


def _hooks(module: torch.nn.Module, seen: dict) -> list:
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


def factory_coord_data(spec, rule, eta: float, wd: float, batches, steps: int, seeds, vocab_size: int,
                       problems: list[str] | None = None) -> CoordData:
    """CoordData of one rule on the factory model at the spec's widths, averaged over seeds:
    the model built as a sweep cell builds it (lwscale.factory.build_user_stack) and trained
    with the sweep's optimizer settings, through coord.follow."""
    from ..factory import build_user_stack
    from ..params import stack_groups
    from ..plan import model_config
    from ..rules import get_rule

    rule = get_rule(rule)
    widths = sorted(spec.model.widths)

    def setup(width: int, seed: int):
        stack, infos = build_user_stack(spec, model_config(spec, width, rule, vocab_size), [seed], torch.device("cpu"))
        groups = stack_groups(stack, infos, [(rule, eta, wd)], spec.optimizer.wd_mode, spec.model.vector_lr_mult)
        return stack, groups, lambda seen: _hooks(stack.module, seen)

    vals: dict[str, np.ndarray] = {}
    follow(widths, seeds, steps, setup, batches, spec.train.grad_clip,
           {"betas": tuple(spec.optimizer.betas), "eps": spec.optimizer.eps}, vals)
    return CoordData(rule.label(), rule.mup, widths, vals, list(problems or []))


def factory_problems(spec, vocab_size: int) -> list[str]:
    """The muP pieces the factory model lacks (lwscale.api.check_mup), as sentences."""
    from ..factory import factory_config, mup_problems

    return mup_problems(spec, factory_config(spec, spec.model.d0, vocab_size))
