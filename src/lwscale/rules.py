"""The width-scaling rules: base (eta, lambda) at the proxy -> per-class (lr, wd) at any width.

A rule is an exponent pair (a, g). With a parameter's width multiplier m (its fan-in
ratio to the base model):

    matrix-like:  lr = eta * m**-a          wd = lam * m**g      (PyTorch-coupled wd)
    vector-like:  lr = eta * vector_lr_mult  wd = 0

Presets (docs/science.md §2):

    rule        a   g    per-step decay lr*wd of matrices   sigma_max vs width
    sqrt-wd     1   1/2  ~ m^-1/2                           flat  (arXiv 2510.15262, default)
    const-wd    1   0    ~ m^-1                             grows as m^1/4
    linear-wd   1   1    flat ("independent" wd)            shrinks as m^-1/4
    sp          0   0    flat                               grows (no width scaling)

Weight decay modes. In ``coupled`` mode (the default, torch.optim.AdamW) each step does
p <- p - lr_t * wd * p and the user's lambda is that ``wd``. In ``independent`` mode the
user's lambda is the per-step decay at peak lr, lam_ind = lr_peak * wd, so a preset that
must keep the same *physical* per-step decay scales it as m**(g - a). Both modes train
exactly the same model for the same physical numbers; ``coupled_wd`` converts.

Everything here is plain arithmetic on floats: no torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

WdMode = Literal["coupled", "independent"]
ParamClass = Literal["matrix", "vector"]
WD_MODES: tuple[str, ...] = ("coupled", "independent")


class RuleError(ValueError):
    """An unknown rule name or impossible rule numbers."""


@dataclass(frozen=True)
class Rule:
    """A width-scaling rule: matrix lr ~ m**-a, matrix (coupled) wd ~ m**g.

    ``mup`` says whether cells under this rule use the muP parametrization with the
    spec's base width. ``sp`` is defined as the muP model with base width := own width,
    so its multipliers are all 1 (docs/science.md §2).
    """

    name: str
    a: float
    g: float
    mup: bool = True

    def label(self) -> str:
        if self.name == "custom":
            return f"custom(a={self.a:g},g={self.g:g})"
        return self.name


PRESETS: dict[str, Rule] = {
    "sqrt-wd": Rule("sqrt-wd", a=1.0, g=0.5),
    "const-wd": Rule("const-wd", a=1.0, g=0.0),
    "linear-wd": Rule("linear-wd", a=1.0, g=1.0),
    "sp": Rule("sp", a=0.0, g=0.0, mup=False),
}
DEFAULT_RULE = "sqrt-wd"


def custom(a: float, g: float) -> Rule:
    """A rule with free exponents, e.g. g fitted by ``lwscale diagnose`` (g = 2*alpha - 1)."""
    if not (math.isfinite(a) and math.isfinite(g)):
        raise RuleError(f"custom rule exponents must be finite numbers, got a={a}, g={g}")
    return Rule("custom", a=float(a), g=float(g))


def get_rule(name: str | Rule) -> Rule:
    """A preset by name (``sqrt-wd``, ``const-wd``, ``linear-wd``, ``sp``), or a Rule as is.

    ``custom(a=1,g=0.5)`` strings are accepted too, as printed by ``Rule.label``.
    """
    if isinstance(name, Rule):
        return name
    key = str(name).strip()
    if key in PRESETS:
        return PRESETS[key]
    if key.startswith("custom(") and key.endswith(")"):
        try:
            kv = dict(part.split("=") for part in key[7:-1].split(","))
            return custom(float(kv["a"]), float(kv["g"]))
        except (ValueError, KeyError) as exc:
            raise RuleError(f"cannot read rule {key!r}: write it as custom(a=1,g=0.5)") from exc
    raise RuleError(f"unknown rule {key!r}; choose one of {', '.join(PRESETS)} or custom(a=..,g=..)")


def class_hparams(
    rule: Rule | str,
    eta: float,
    lam: float,
    m: float,
    cls: ParamClass,
    wd_mode: WdMode = "coupled",
    vector_lr_mult: float = 1.0,
) -> tuple[float, float]:
    """(lr, wd) of one parameter class at width multiplier ``m``, in ``wd_mode``'s units.

    ``eta`` and ``lam`` are base coordinates: the values at the base width. In
    ``independent`` mode ``lam`` and the returned wd are per-step decays at peak lr.
    """
    rule = get_rule(rule)
    if m <= 0 or not math.isfinite(m):
        raise RuleError(f"width multiplier must be positive, got {m}")
    if cls == "vector":
        return eta * vector_lr_mult, 0.0
    if cls != "matrix":
        raise RuleError(f"unknown parameter class {cls!r}")
    lr = eta * m ** (-rule.a)
    if wd_mode == "coupled":
        return lr, lam * m**rule.g
    if wd_mode == "independent":
        # physical per-step decay lr*wd scales as m**(g-a) whatever the mode
        return lr, lam * m ** (rule.g - rule.a)
    raise RuleError(f"unknown weight-decay mode {wd_mode!r}; use coupled or independent")


def coupled_wd(lr: float, wd: float, wd_mode: WdMode) -> float:
    """The torch.optim.AdamW (coupled) weight decay that realises ``wd`` given in ``wd_mode``."""
    if wd_mode == "coupled" or wd == 0.0:
        return wd
    if wd_mode == "independent":
        if lr <= 0:
            raise RuleError("independent weight decay needs a positive peak learning rate")
        return wd / lr
    raise RuleError(f"unknown weight-decay mode {wd_mode!r}")


def per_step_decay(lr: float, wd_coupled: float) -> float:
    """Fraction of a weight removed per step at peak lr: lr * wd (coupled)."""
    return lr * wd_coupled


def timescale(lr: float, wd_coupled: float) -> float:
    """AdamW's EMA timescale tau = 1/(lr*wd) in steps (inf without decay)."""
    d = lr * wd_coupled
    return math.inf if d <= 0 else 1.0 / d

