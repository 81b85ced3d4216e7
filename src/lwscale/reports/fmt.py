"""Numbers as table text, the same in every report: ``num`` for one value and ``pm`` for a
mean ± its standard error. A missing or NaN value prints as –, infinity as ∞."""

from __future__ import annotations

import math


def num(x, fmt: str = ".4g") -> str:
    """A number for a table: ∞ for inf, – for a missing or NaN value."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "∞" if x == math.inf else "–"
    return format(x, fmt)


def pm(v, se) -> str:
    """``v`` ± ``se`` to 4 places, the ± part only when ``se`` is known; – for no value."""
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.4f}" + (f" ± {se:.4f}" if se is not None and math.isfinite(se) else "")
