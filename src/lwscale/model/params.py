"""Parameter classes (matrix-like vs vector-like), inferred from shapes, and optimizer groups.

As in microsoft/mup's base shapes: build the model at the base width and at the cell's
width, and compare each parameter's shape. A dimension whose size differs is "infinite"
(it grows with width). Two infinite dims make a parameter *matrix-like*; one or none make
it *vector-like*. A matrix's width multiplier is its own fan-in ratio: the size ratio of
its last infinite dim (``in`` of a [out, in] or stacked [K, out, in] weight).

The same inference serves the built-in model and any user ``nn.Module``: there is no
fixed table of names to drift out of date. When widths are equal (m = 1), no dim differs,
so ``classify`` also accepts a third model at another width (``probe``) to tell which dims
scale; the built-in model does this automatically via ``classify_model``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch.nn as nn

if TYPE_CHECKING:
    import torch

from lwscale.model.classes import ParamInfo, group_hparams, group_keys
from lwscale.model.transformer import Transformer
from lwscale.science.rules import ParamClass, WdMode


class ShapeError(ValueError):
    """A parameter whose shape change no class explains, or that one model lacks."""


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in model.named_parameters()}


def classify(
    model: nn.Module,
    base: nn.Module,
    probe: nn.Module | None = None,
    overrides: dict[str, str] | None = None,
) -> list[ParamInfo]:
    """Classify every parameter of ``model`` by comparing shapes with ``base``.

    ``probe`` is the model at a third width, used only to find which dims scale with width
    (needed when ``model`` and ``base`` have the same width). ``overrides`` maps name
    patterns (fnmatch, e.g. ``"unembed"`` or ``"*.lm_head.weight"``) to ``"matrix"`` or
    ``"vector"`` for ambiguous tensors.
    """
    shapes, base_shapes = _shapes(model), _shapes(base)
    probe_shapes = _shapes(probe) if probe is not None else shapes
    missing = sorted(set(shapes) ^ set(base_shapes))
    if missing:
        where = ["base model" if n in shapes else "model" for n in missing]
        raise ShapeError(
            "parameter(s) missing in one of the two models: "
            + ", ".join(f"{n} (not in the {w})" for n, w in zip(missing, where))
        )
    overrides = dict(overrides or {})
    for cls in overrides.values():
        if cls not in ("matrix", "vector"):
            raise ShapeError(f"override class must be 'matrix' or 'vector', got {cls!r}")

    infos = []
    for name, shape in shapes.items():
        b = base_shapes[name]
        ref = probe_shapes.get(name, shape) if shape == b else shape
        if len(shape) != len(b) or len(ref) != len(b):
            raise ShapeError(f"{name}: rank changes with width ({b} at base vs {shape}); no class explains it")
        inf = tuple(i for i, (x, y) in enumerate(zip(ref, b)) if x != y)
        if len(inf) > 2:
            raise ShapeError(
                f"{name}: {len(inf)} dims change with width ({b} at base vs {ref}); "
                "only matrix-like (2) or vector-like (<= 1) parameters are understood"
            )
        cls: ParamClass = "matrix" if len(inf) == 2 else "vector"
        overridden = False
        for pattern, forced in overrides.items():
            if fnmatch.fnmatchcase(name, pattern):
                cls, overridden = forced, forced != cls  # type: ignore[assignment]
        if cls == "matrix":
            j = inf[-1] if inf else len(shape) - 1
            mult = shape[j] / b[j]
        else:
            mult = 1.0
        infos.append(ParamInfo(name, cls, mult, shape, b, inf, overridden))
    return infos


def classify_model(model, unembed_class: str | None = None) -> list[ParamInfo]:
    """Classes of the built-in Transformer (``lwscale.model.transformer``), via shape inference against
    meta-device copies at its base width and at twice its width.

    The unembedding's class is the model's own ``cfg.unembed_class``: the model's readout
    multiplier and init follow it, so the optimizer must too. ``unembed_class``, when given,
    must agree with it (a mismatch would scale the readout by width twice, or not at all).
    """
    cfg = model.cfg
    if unembed_class is None:
        unembed_class = cfg.unembed_class
    elif unembed_class != cfg.unembed_class:
        raise ValueError(
            f"unembed_class {unembed_class!r} differs from the model's own "
            f"({cfg.unembed_class!r}): build the model with ModelConfig(unembed_class=...)"
        )

    def meta(width: int) -> nn.Module:
        import torch

        with torch.device("meta"):
            return Transformer(replace(cfg, width=width))

    overrides = {"unembed": "matrix"} if unembed_class == "matrix" else None
    return classify(model, meta(cfg.base_width), probe=meta(2 * cfg.width), overrides=overrides)


@dataclass
class Group:
    """Params sharing a per-cell (lr, wd): ``lr`` and ``wd`` are [K] tensors (coupled wd)."""

    name: str
    params: list[torch.nn.Parameter]
    lr: torch.Tensor
    wd: torch.Tensor


def stack_groups(
    model: nn.Module,
    infos: list[ParamInfo],
    cells: list[tuple],
    wd_mode: WdMode = "coupled",
    vector_lr_mult: float = 1.0,
):
    """Optimizer groups for a stacked model: one group per (class, multiplier), holding
    [K] tensors of each cell's peak lr and coupled wd. ``cells[k] = (rule, eta, lam)``, or
    ``(rule, eta, lam, horizon)`` with the cell's horizon ratio S/S0 (``plan.Cell.rule_hparams``)."""
    import torch

    params = dict(model.named_parameters())
    groups = []
    for key, names in group_keys(infos).items():
        hp = [group_hparams(key, c[0], c[1], c[2], wd_mode, vector_lr_mult, *c[3:]) for c in cells]
        groups.append(
            Group(
                name=key.label(),
                params=[params[n] for n in names],
                lr=torch.tensor([h[0] for h in hp], dtype=torch.float32),
                wd=torch.tensor([h[1] for h in hp], dtype=torch.float32),
            )
        )
    return groups
