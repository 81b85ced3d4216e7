"""``transfer --train``: train the target once per rule at that rule's transferred point.

Each rule gets a derived spec: the run's spec with one width (the target), one rule and one
explicit grid pair, and ``seeds`` seeds. It runs through the same runner into the same run
directory, keeping the swept ``spec.yaml``; a point the sweep already trained is found done
and not trained again. Returns, per rule, the mean and standard error of the final
validation loss over the seeds that finished.
"""
from __future__ import annotations

from typing import Callable

from ..spec import Spec, parse_spec
from .results import at_point, seed_losses
from .tables import mean_se


def derived_spec(spec: Spec, rule: str, target: int, eta: float, wd: float, seeds: list[int],
                 name: str | None = None) -> Spec:
    from ..rules import get_rule

    data = spec.model_dump(mode="json")
    data["name"] = name or spec.name
    r = get_rule(rule)
    data["model"]["widths"] = [target]
    data["model"]["base_width"] = spec.model.d0          # the base stays the swept one
    data["grid"] = {"pairs": [[eta, wd]]}
    data["rules"] = [{"name": "custom", "a": r.a, "g": r.g} if r.name == "custom" else r.name]
    data["train"]["seeds"] = seeds
    return parse_spec(data, f"transfer --train ({rule})")


def seed_list(spec: Spec, n: int) -> list[int]:
    """The run's seeds first, then the next unused integers, n in all."""
    seeds = list(spec.train.seeds)[:n]
    k = 0
    while len(seeds) < n:
        if k not in seeds:
            seeds.append(k)
        k += 1
    return seeds


def train_points(spec: Spec, run_root, target: int, points: dict[str, tuple[float, float]], n_seeds: int = 2,
                 log: Callable[[str], None] = lambda s: None, progress=None) -> dict[str, dict]:
    from ..runners.local import run_sweep

    out = {}
    seeds = seed_list(spec, n_seeds)
    for rule, (eta, wd) in points.items():
        d = derived_spec(spec, rule, target, eta, wd, seeds, name=run_root.name)
        res = run_sweep(d, out_dir=run_root.parent, progress=progress, log=log, update_spec=False)
        df = res.table
        df = df[df["seed"].isin(seeds)]
        done = seed_losses(df, rule, target, eta, wd)
        loss, se, n = mean_se(list(done.values()))
        out[rule] = {"trained_loss": loss, "trained_loss_se": se, "trained_n": n,
                     "trained_statuses": sorted(set(df.loc[at_point(df, rule, target, eta, wd), "status"])),
                     "trained_seeds": done}
    return out
