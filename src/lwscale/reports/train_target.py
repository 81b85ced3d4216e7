"""``transfer --train``: train the target's competitors on fresh seeds.

The competitors (``transfer.competitors``) are each rule's transferred point, the best target
cell of any rule and each rule's own best target cell, all picked on the grid's seeds. Each
rule gets a derived spec: the run's spec with one width (the target), that rule, its points
as explicit grid pairs, and the fresh seeds. It runs through the same runner into the same
run directory, keeping the swept ``spec.yaml``; a cell the run already holds is found done
and not trained again.
"""
from __future__ import annotations

from typing import Callable

from ..spec import Spec, parse_spec


def derived_spec(spec: Spec, rule: str, target: int, points: list[tuple[float, float]], seeds: list[int],
                 name: str | None = None) -> Spec:
    from ..rules import get_rule

    data = spec.model_dump(mode="json")
    data["name"] = name or spec.name
    r = get_rule(rule)
    data["model"]["widths"] = [target]
    data["model"]["base_width"] = spec.model.d0          # the base stays the swept one
    data["grid"] = {"pairs": [[eta, wd] for eta, wd in points]}
    data["rules"] = [{"name": "custom", "a": r.a, "g": r.g} if r.name == "custom" else r.name]
    data["train"]["seeds"] = seeds
    return parse_spec(data, f"transfer --train ({rule})")


def fresh_seeds(spec: Spec, n: int) -> list[int]:
    """The first n non-negative integers the grid was not trained on: new inits and batch
    orders, so the noise that picked the optima does not also judge them."""
    grid = set(spec.train.seeds)
    out, k = [], 0
    while len(out) < n:
        if k not in grid:
            out.append(k)
        k += 1
    return out


def train_points(spec: Spec, run_root, target: int, points: dict[str, set[tuple[float, float]]], seeds: list[int],
                 log: Callable[[str], None] = lambda s: None, progress=None) -> None:
    """Train, per rule, the target cells at ``points`` (base (eta, lambda)) on ``seeds``, into
    the run. Cells the run already holds, under any rule, are found done and not trained again."""
    from ..runners.local import run_sweep

    for rule, pts in points.items():
        d = derived_spec(spec, rule, target, sorted(pts), seeds, name=run_root.name)
        run_sweep(d, out_dir=run_root.parent, progress=progress, log=log, update_spec=False)
