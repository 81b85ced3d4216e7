"""``transfer --train``: train the target's competitors on fresh seeds.

The competitors (``transfer.competitors``) are each rule's transferred point, the best target
cell of any rule and each rule's own best target cell, all picked on the grid's seeds. Each
rule gets a derived spec: the run's spec with one width (the target) at one horizon (the
target's steps), that rule, its points as explicit grid pairs, and the fresh seeds. It runs
through the same runner into the same run directory, keeping the swept ``spec.yaml``; a cell
the run already holds is found done and not trained again.
"""

from __future__ import annotations

from typing import Callable

from lwscale.core.errors import UserError
from lwscale.core.log import quiet
from lwscale.rundir.store import Store
from lwscale.runners.local import run_sweep
from lwscale.runners.result import RunResult
from lwscale.science.rules import get_rule
from lwscale.sweep.spec import Spec, parse_spec


def target_horizon(spec: Spec, target: int, steps: int | None) -> int | None:
    """The horizon of ``spec`` at which ``target`` trains ``steps`` steps (None: the only one).
    ``transfer --train`` trains at the run's own horizons only: a new length is a new run."""
    if steps is None:
        return None
    for h in spec.horizons():
        if spec.steps_at(target, h) == steps:
            return h
    have = ", ".join(f"{spec.steps_at(target, h):,}" for h in spec.horizons())
    raise UserError(
        f"transfer --train trains the target at the run's own lengths ({have} steps at width "
        f"{target}), not {steps:,}: add that length to train.steps in a new run"
    )


def derived_spec(
    spec: Spec,
    rule: str,
    target: int,
    points: list[tuple[float, float]],
    seeds: list[int],
    name: str | None = None,
    steps: int | None = None,
) -> Spec:
    """The run's spec narrowed to the target width at ``steps`` (default: its horizon(s) as
    swept), one rule, ``points`` as grid pairs and ``seeds``. Its cells have the ids the run's
    own would: the settings a cell id hashes are left as they are (docs/records.md)."""
    data = spec.model_dump(mode="json")
    data["name"] = name or spec.name
    r = get_rule(rule)
    data["model"]["widths"] = [target]
    data["model"]["base_width"] = spec.model.d0  # the base stays the swept one
    data["grid"] = {"pairs": [[eta, wd] for eta, wd in points]}
    data["rules"] = [
        {"name": "custom", "a": r.a, "g": r.g, "h": r.h, "h_lr": r.h_lr} if r.name == "custom" else r.label()
    ]
    data["train"]["seeds"] = seeds
    horizon = target_horizon(spec, target, steps)
    if horizon is not None and spec.multi_horizon:  # one horizon of several: the rest of the spec as is
        data["train"]["steps_by_width"] = {target: [horizon]}
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


def train_points(
    spec: Spec,
    run_root,
    target: int,
    points: dict[str, set[tuple[float, float]]],
    seeds: list[int],
    log: Callable[[str], None] = quiet,
    progress=None,
    steps: int | None = None,
) -> RunResult | None:
    """Train, per rule, the target cells at ``points`` (base (eta, lambda)) on ``seeds``, into
    the run, at the target's ``steps`` (a run of several horizons). Cells the run already
    holds, under any rule, are found done and not trained again. The result sums the rules'
    runs (None when ``points`` is empty); its plan is the last rule's. An interrupt (Ctrl-C)
    stops it after writing what finished: the result says ``interrupted``."""
    target_horizon(spec, target, steps)  # a length the run has not trained: one line, before anything trains
    store, result = Store(run_root), None
    for rule, pts in points.items():
        d = derived_spec(spec, rule, target, sorted(pts), seeds, name=run_root.name, steps=steps)
        one = run_sweep(d, out_dir=run_root.parent, progress=progress, log=log, update_spec=False)
        result = result or RunResult(store, one.plan)
        result.summary.add(one.summary)
        result.interrupted |= one.interrupted
        # a point whose cell another rule trained first was found done, so its record lacks this
        # rule's label: add it, or the table rebuilt after the next rule would drop its rows
        result.plan = plan = one.plan
        for cid in {cid for _, cid in plan.labels}:
            store.add_labels(cid, [dict(lab.__dict__) for lab, c in plan.labels if c == cid])
        if one.interrupted:  # Ctrl-C: the rules left are not started
            break
    if result is not None:
        result.table = store.rebuild_table(result.plan)
    return result
