"""Your model in a sweep: ``model.factory: "package.module:build"`` in the spec.

lwscale imports ``build`` and calls ``build(width)`` under each cell's seed; it must return
an ``nn.Module`` mapping tokens [B, T] to logits [B, T, V] (or to anything a loss function
named by ``model.loss: "package.module:fn"`` turns into a scalar, ``fn(output, targets)``).
If ``build`` accepts ``vocab_size`` or ``seq_len`` keywords, they are passed too.

Parameter classes come from shape inference (``lwscale.model.params``): the model is built on the
meta device at the base width, at the cell's width and at twice it, and the shapes compared.
Such a model trains one cell at a time (K = 1; stacking needs lwscale's own stacked layers)
through the very same loop as the built-in model (``lwscale.training.loop.train_stack``): its
parameters are held with a leading K = 1 axis and the module runs on them through
``torch.func.functional_call``. It trains in training mode and is evaluated (the validation
loss, the diagnostics' gains) in eval mode, so dropout is off there.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from lwscale.core.errors import UserError
from lwscale.model.classes import ParamInfo
from lwscale.model.config import UserModelConfig
from lwscale.model.mup import check_mup
from lwscale.model.params import classify

STACKING_NOTE = (
    "model.factory: your model trains one cell at a time (stacking disabled: it needs lwscale's "
    "stacked layers), through the same training loop"
)


class FactoryError(UserError):
    """A factory or loss function that cannot be imported or used."""


def load_callable(ref: str, what: str = "model.factory") -> Callable:
    """Import ``"package.module:name"``; the current directory is importable, as for ``python -m``."""
    mod_name, _, attr = ref.partition(":")
    if not mod_name or not attr:
        raise FactoryError(f'{what}: write it as "package.module:function", got {ref!r}')
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise FactoryError(
            f"{what}: cannot import {mod_name!r} ({exc}); run lwscale from the directory it is "
            "importable from (where the sweep ran) or put it on PYTHONPATH"
        ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise FactoryError(f"{what}: {mod_name!r} has no function {attr!r}")
    return fn


def call_factory(spec, width: int, vocab_size: int) -> nn.Module:
    """``build(width)`` (plus ``vocab_size``/``seq_len`` when it takes them), checked."""
    fn = load_callable(spec.model.factory)
    kw = {}
    try:
        sig = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        sig = {}
    if "vocab_size" in sig:
        kw["vocab_size"] = vocab_size
    if "seq_len" in sig:
        kw["seq_len"] = spec.model.seq_len
    model = fn(width, **kw)
    if not isinstance(model, nn.Module):
        raise FactoryError(f"model.factory {spec.model.factory!r} returned {type(model).__name__}, not an nn.Module")
    if not any(True for _ in model.parameters()):
        raise FactoryError(f"model.factory {spec.model.factory!r} built a model without parameters")
    return model


def classify_factory(spec, cfg: UserModelConfig) -> list[ParamInfo]:
    """Classes of the factory model at ``cfg.width`` against ``cfg.base_width`` (SP: itself),
    probing at twice the width, all on the meta device."""
    with torch.device("meta"):
        model = call_factory(spec, cfg.width, cfg.vocab_size)
        base = call_factory(spec, cfg.base_width, cfg.vocab_size)
        probe = call_factory(spec, 2 * cfg.width, cfg.vocab_size)
    try:
        return classify(model, base, probe=probe)
    except ValueError as exc:
        raise FactoryError(f"model.factory {spec.model.factory!r}: {exc}") from None


_N_PARAMS: dict[tuple, int] = {}


def flops_per_token(spec, cfg: UserModelConfig) -> float:
    """The usual 6N estimate of a factory model's training FLOPs per token (N its parameter
    count at ``cfg.width``, counted on the meta device; attention's T-dependent part not
    counted), as its records report it."""
    key = (spec.model.factory, cfg.width, cfg.vocab_size, cfg.seq_len)
    if key not in _N_PARAMS:
        with torch.device("meta"):
            model = call_factory(spec, cfg.width, cfg.vocab_size)
        _N_PARAMS[key] = sum(p.numel() for p in model.parameters())
    return 6.0 * _N_PARAMS[key]


def flat_name(name: str) -> str:
    return name.replace(".", "__")


class UserStack(nn.Module):
    """A user's module as a stack of K = 1: every parameter held as [1, *shape] (what the
    stacked optimizer expects); ``forward(idx[1,B,T], targets[1,B,T])`` gives the loss [1].
    ``param_infos``: the classes of its parameters, under the stack's (flat) names."""

    def __init__(self, module: nn.Module, param_infos: list[ParamInfo], loss_fn: Callable | None = None):
        super().__init__()
        object.__setattr__(self, "module", module)  # not a child: its parameters live here, stacked
        self.names = [n for n, _ in module.named_parameters()]
        self.param_infos = param_infos
        for n, p in module.named_parameters():
            self.register_parameter(flat_name(n), nn.Parameter(p.detach().unsqueeze(0).clone()))
        for p in module.parameters():  # the module runs on the stacked copies: free its own
            p.data = torch.empty(0, dtype=p.dtype, device=p.device)
        for n, b in module.named_buffers():  # its own tensors (e.g. batch-norm running stats), also
            self.register_buffer("buffer__" + flat_name(n), b)  # here so checkpoints hold them
        self.loss_fn = loss_fn

    def train(self, mode: bool = True) -> UserStack:
        """Also switches the user's module (not a child, so ``nn.Module.train`` would not reach
        it): its dropout or batch norm then evaluates in eval mode (``loop.train_stack``)."""
        super().train(mode)
        self.module.train(mode)
        return self

    def output(self, idx: torch.Tensor):
        """The user's module on tokens [1, B, T], with the stacked parameters: its own output."""
        params = {n: getattr(self, flat_name(n))[0] for n in self.names}
        return torch.func.functional_call(self.module, params, (idx[0],))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        out = self.output(idx)
        if targets is None:
            return out.unsqueeze(0)
        if self.loss_fn is not None:
            loss = self.loss_fn(out, targets[0])
        else:
            if out.shape[:-1] != targets[0].shape:
                raise FactoryError(
                    f"model.factory: the model returned {tuple(out.shape)} for tokens "
                    f"{tuple(idx[0].shape)}; expected logits [B, T, V] (or name a model.loss)"
                )
            loss = F.cross_entropy(out.flatten(0, -2).float(), targets[0].reshape(-1))
        return loss.float().reshape(1)


def build_user_stack(
    spec, cfg: UserModelConfig, seeds: list[int], device: torch.device
) -> tuple[UserStack, list[ParamInfo]]:
    """The factory model of one cell, initialised under its seed, and its parameter classes
    (named as the stack's parameters)."""
    if len(seeds) != 1:
        raise FactoryError(f"a model.factory model trains one cell at a time, got a stack of {len(seeds)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seeds[0]))
        module = call_factory(spec, cfg.width, cfg.vocab_size)
    module.to(device)
    loss_fn = load_callable(spec.model.loss, "model.loss") if spec.model.loss else None
    infos = [replace(i, name=flat_name(i.name)) for i in classify_factory(spec, cfg)]
    return UserStack(module, infos, loss_fn), infos


def mup_problems(spec, cfg: UserModelConfig) -> list[str]:
    """What the factory model lacks of muP (``lwscale.model.mup.check_mup``), from freshly built
    models at the base width and twice it; ``lwscale coord-check`` can report these."""
    d0 = spec.model.d0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = call_factory(spec, d0, cfg.vocab_size)
        wide = call_factory(spec, 2 * d0, cfg.vocab_size)
    return check_mup(wide, base)


def preflight(spec, cfg: UserModelConfig, log: Callable[[str], None]) -> None:
    """Notes before a factory sweep: stacking is off, and any muP piece the model lacks."""
    log(STACKING_NOTE)
    for problem in mup_problems(spec, cfg):
        log(f"warning: muP: {problem} (transfer across widths will be off)")
