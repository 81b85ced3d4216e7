"""The scaling rules: base (eta, lambda) at the proxy -> per-class (lr, wd) at any width and
training length.

A rule is an exponent pair (a, g), and optionally horizon exponents (h, h_lr). With a
parameter's width multiplier m (its fan-in ratio to the base model) and the horizon ratio
rho = S/S0 (the cell's training steps over the base horizon's, docs/science.md §2):

    matrix-like:  lr = eta * m**-a * rho**-h_lr                  wd = lam * m**g * rho**-h   (coupled wd)
    vector-like:  lr = eta * vector_lr_mult * rho**-h_lr         wd = 0

h = 0 (the default) is width scaling only; h = 1 holds the timescales completed
sum_t lr_t*wd fixed across lengths at a fixed lr (Wang & Aitchison, arXiv 2405.13698).
A rule with horizon exponents is written ``sqrt-wd(h=1)``, ``const-wd(h=0.5,h_lr=0.5)`` or
``custom(a=1,g=0.5,h=1)``: the label every table and figure shows, and a spec accepts.

Presets (docs/science.md §2):

    rule        a   g    per-step decay lr*wd of matrices   sigma_max vs width
    sqrt-wd     1   1/2  ~ m^-1/2                           flat  (arXiv 2510.15262, default)
    const-wd    1   0    ~ m^-1                             grows as m^1/4
    linear-wd   1   1    flat ("independent" wd)            shrinks as m^-1/4
    sp          0   0    flat                               grows (no width scaling)

Weight decay modes. In ``coupled`` mode (the default, torch.optim.AdamW) each step does
p <- p - lr_t * wd * p and the user's lambda is that ``wd``. In ``independent`` mode the
user's lambda is the per-step decay at peak lr, lam_ind = lr_peak * wd, so a preset that
must keep the same *physical* per-step decay scales it as m**(g - a) * rho**(-h - h_lr). Both modes train
exactly the same model for the same physical numbers; ``coupled_wd`` converts.

Everything here is plain arithmetic on floats: no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

WdMode = Literal["coupled", "independent"]
ParamClass = Literal["matrix", "vector"]
WD_MODES: tuple[str, ...] = ("coupled", "independent")


class RuleError(ValueError):
    """An unknown rule name or impossible rule numbers."""


@dataclass(frozen=True)
class Rule:
    """A scaling rule: matrix lr ~ m**-a, matrix (coupled) wd ~ m**g, and across training
    lengths wd ~ rho**-h and every lr ~ rho**-h_lr (rho = S/S0; both 0: width only).

    ``mup`` says whether cells under this rule use the muP parametrization with the
    spec's base width. ``sp`` is defined as the muP model with base width := own width,
    so its multipliers are all 1 (docs/science.md §2).
    """

    name: str
    a: float
    g: float
    mup: bool = True
    h: float = 0.0  # matrix wd ~ (S/S0)**-h
    h_lr: float = 0.0  # every lr ~ (S/S0)**-h_lr

    @property
    def horizon(self) -> bool:
        """Whether the rule scales with training length at all."""
        return self.h != 0.0 or self.h_lr != 0.0

    def _horizon_args(self) -> list[str]:
        return ([f"h={self.h:g}"] if self.h else []) + ([f"h_lr={self.h_lr:g}"] if self.h_lr else [])

    def label(self) -> str:
        if self.name == "custom":
            return "custom(" + ",".join([f"a={self.a:g}", f"g={self.g:g}"] + self._horizon_args()) + ")"
        extra = self._horizon_args()
        return f"{self.name}({','.join(extra)})" if extra else self.name

    def width_only(self) -> Rule:
        """The same rule without its horizon exponents."""
        return replace(self, h=0.0, h_lr=0.0)


PRESETS: dict[str, Rule] = {
    "sqrt-wd": Rule("sqrt-wd", a=1.0, g=0.5),
    "const-wd": Rule("const-wd", a=1.0, g=0.0),
    "linear-wd": Rule("linear-wd", a=1.0, g=1.0),
    "sp": Rule("sp", a=0.0, g=0.0, mup=False),
}
DEFAULT_RULE = "sqrt-wd"


def _finite(**values: float) -> None:
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise RuleError("rule exponents must be finite numbers, got " + ", ".join(f"{k}={v}" for k, v in bad.items()))


def custom(a: float, g: float, h: float = 0.0, h_lr: float = 0.0) -> Rule:
    """A rule with free exponents, e.g. g fitted by ``lwscale diagnose`` (g = 2*alpha - 1),
    and optionally horizon exponents h (wd) and h_lr (lr)."""
    if not all(math.isfinite(float(v)) for v in (a, g, h, h_lr)):
        raise RuleError(f"custom rule exponents must be finite numbers, got a={a}, g={g}, h={h}, h_lr={h_lr}")
    return Rule("custom", a=float(a), g=float(g), h=float(h), h_lr=float(h_lr))


def with_horizon(rule: Rule | str, h: float = 0.0, h_lr: float = 0.0) -> Rule:
    """``rule`` with horizon exponents h (matrix wd ~ (S/S0)**-h) and h_lr (lr ~ (S/S0)**-h_lr)."""
    _finite(h=float(h), h_lr=float(h_lr))
    return replace(get_rule(rule), h=float(h), h_lr=float(h_lr))


_RULE_SYNTAX = (
    "choose one of " + ", ".join(PRESETS) + " or custom(a=..,g=..), optionally with horizon "
    "exponents: sqrt-wd(h=1), custom(a=1,g=0.5,h=1,h_lr=0)"
)


def get_rule(name: str | Rule) -> Rule:
    """A preset by name (``sqrt-wd``, ``const-wd``, ``linear-wd``, ``sp``), or a Rule as is.

    Labels as printed by ``Rule.label`` are accepted too: ``custom(a=1,g=0.5)``, and a
    preset or custom rule with horizon exponents, ``sqrt-wd(h=1)``, ``sqrt-wd(h=1,h_lr=0.5)``,
    ``custom(a=1,g=0.5,h=1)``.
    """
    if isinstance(name, Rule):
        return name
    key = "".join(str(name).split())  # "sqrt-wd( h = 1 )" reads as sqrt-wd(h=1)
    if key in PRESETS:
        return PRESETS[key]
    head, paren, rest = key.partition("(")
    if not paren or not rest.endswith(")") or (head not in PRESETS and head != "custom"):
        raise RuleError(f"unknown rule {str(name).strip()!r}; {_RULE_SYNTAX}")
    allowed = ("a", "g", "h", "h_lr") if head == "custom" else ("h", "h_lr")
    try:
        kv = {}
        for part in rest[:-1].split(","):
            k, v = part.split("=")
            if k not in allowed or k in kv:
                raise KeyError(k)
            kv[k] = float(v)
        if head == "custom":
            return custom(kv.pop("a"), kv.pop("g"), **kv)
        if not kv:
            raise KeyError("h")
        return with_horizon(PRESETS[head], **kv)
    except (ValueError, KeyError) as exc:
        example = (
            "custom(a=1,g=0.5) or custom(a=1,g=0.5,h=1)" if head == "custom" else f"{head}(h=1) or {head}(h=1,h_lr=0.5)"
        )
        raise RuleError(f"cannot read rule {key!r}: write it as {example}") from exc


def class_hparams(
    rule: Rule | str,
    eta: float,
    lam: float,
    m: float,
    cls: ParamClass,
    wd_mode: WdMode = "coupled",
    vector_lr_mult: float = 1.0,
    horizon: float = 1.0,
) -> tuple[float, float]:
    """(lr, wd) of one parameter class at width multiplier ``m`` and horizon ratio
    ``horizon`` = S/S0 (the cell's steps over the base horizon's), in ``wd_mode``'s units.

    ``eta`` and ``lam`` are base coordinates: the values at the base width and the base
    horizon. In ``independent`` mode ``lam`` and the returned wd are per-step decays at peak lr.
    """
    rule = get_rule(rule)
    if m <= 0 or not math.isfinite(m):
        raise RuleError(f"width multiplier must be positive, got {m}")
    if horizon <= 0 or not math.isfinite(horizon):
        raise RuleError(f"horizon ratio S/S0 must be positive, got {horizon}")
    lr_h = horizon ** (-rule.h_lr) if rule.h_lr else 1.0  # exactly 1 for a width-only rule
    if cls == "vector":
        return eta * vector_lr_mult * lr_h, 0.0
    if cls != "matrix":
        raise RuleError(f"unknown parameter class {cls!r}")
    lr = eta * m ** (-rule.a) * lr_h
    wd_h = horizon ** (-rule.h) if rule.h else 1.0
    if wd_mode == "coupled":
        return lr, lam * m**rule.g * wd_h
    if wd_mode == "independent":
        # physical per-step decay lr*wd scales as m**(g-a) * rho**(-h-h_lr) whatever the mode
        return lr, lam * m ** (rule.g - rule.a) * wd_h * lr_h
    raise RuleError(f"unknown weight-decay mode {wd_mode!r}; use coupled or independent")


def optimizer_hparams(
    rule: Rule | str,
    eta: float,
    lam: float,
    m: float,
    cls: ParamClass,
    wd_mode: WdMode = "coupled",
    vector_lr_mult: float = 1.0,
    horizon: float = 1.0,
) -> tuple[float, float]:
    """(peak lr, coupled wd) of one parameter class, as torch.optim.AdamW takes them: ``class_hparams``
    then ``coupled_wd``. Every optimizer group, table and transfer reads its numbers here."""
    lr, wd = class_hparams(rule, eta, lam, m, cls, wd_mode, vector_lr_mult, horizon)
    return lr, coupled_wd(lr, wd, wd_mode)


def coupled_wd(lr: float, wd: float, wd_mode: WdMode) -> float:
    """The torch.optim.AdamW (coupled) weight decay that realises ``wd`` given in ``wd_mode``."""
    if wd_mode == "coupled" or wd == 0.0:
        return wd
    if wd_mode == "independent":
        if lr <= 0:
            raise RuleError("independent weight decay needs a positive peak learning rate")
        return wd / lr
    raise RuleError(f"unknown weight-decay mode {wd_mode!r}")


# A cell is in AdamW's steady state once it has completed this many timescales sum_t lr_t*wd
# (docs/science.md): the validity gate, the plan's warning and diagnose's fits all read it.
STEADY_TIMESCALES = 3.0


def timescale(lr: float, wd_coupled: float) -> float:
    """AdamW's EMA timescale tau = 1/(lr*wd) in steps (inf without decay)."""
    d = lr * wd_coupled
    return math.inf if d <= 0 else 1.0 / d
