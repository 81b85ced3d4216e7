"""A parameter's class (``ParamInfo``: matrix-like or vector-like, and its width multiplier) and
the optimizer groups they form, without torch: what the plan and the reports compute with.
``params.py`` infers the classes from a model's shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from lwscale.science.rules import ParamClass, Rule, WdMode, get_rule, optimizer_hparams


@dataclass(frozen=True)
class ParamInfo:
    name: str
    cls: ParamClass
    width_mult: float  # fan-in ratio for matrices; 1.0 for vectors
    shape: tuple[int, ...]
    base_shape: tuple[int, ...]
    inf_dims: tuple[int, ...]  # dims that grow with width
    overridden: bool = False


def report(infos: Iterable[ParamInfo]) -> str:
    """A plain-text table of the classification, one line per parameter."""
    rows = [("parameter", "class", "m", "shape", "base shape")]
    for i in infos:
        cls = i.cls + (" (override)" if i.overridden else "")
        rows.append((i.name, cls, f"{i.width_mult:g}", "x".join(map(str, i.shape)), "x".join(map(str, i.base_shape))))
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


@dataclass(frozen=True)
class GroupKey:
    """Parameters that share one (lr, wd): a class and, for matrices, a width multiplier."""

    cls: ParamClass
    width_mult: float

    def label(self) -> str:
        return "vector" if self.cls == "vector" else f"matrix(m={self.width_mult:g})"


def group_keys(infos: Iterable[ParamInfo]) -> dict[GroupKey, list[str]]:
    groups: dict[GroupKey, list[str]] = {}
    for i in infos:
        key = GroupKey(i.cls, i.width_mult if i.cls == "matrix" else 1.0)
        groups.setdefault(key, []).append(i.name)
    return groups


def group_hparams(
    key: GroupKey,
    rule: Rule | str,
    eta: float,
    lam: float,
    wd_mode: WdMode = "coupled",
    vector_lr_mult: float = 1.0,
    horizon: float = 1.0,
) -> tuple[float, float]:
    """Peak lr and the *coupled* wd that the optimizer applies to one group; ``horizon`` is
    the cell's S/S0 (its steps over the base horizon's; 1 for a width-only rule's purposes)."""
    return optimizer_hparams(get_rule(rule), eta, lam, key.width_mult, key.cls, wd_mode, vector_lr_mult, horizon)
