"""``lwscale transfer --emit yaml``: the target's AdamW parameter groups as YAML a training
script can load: per rule, per group (class and width multiplier) its peak lr, its
PyTorch-coupled weight_decay and the parameters it holds, by name pattern. The groups and
numbers are the sweep's own (``plan.param_classes``, ``classes.group_hparams``; docs/design.md).
"""

from __future__ import annotations

import re
from collections import defaultdict

import yaml

HOW_TO = """\
# What to do with it: pick your rule under `rules`, and build one torch.optim.AdamW group per entry of
# its param_groups, holding the parameters whose names (model.named_parameters()) match one of the
# entry's `params` patterns (fnmatch: `*` stands for a block index); every parameter matches exactly one
# entry. Give the group the entry's `lr` (the peak: your schedule scales it, as the sweep's did) and
# `weight_decay` (PyTorch-coupled, p <- p - lr * weight_decay * p). The model itself must carry the same
# muP pieces as the sweep's (init and readout multiplier); for your own nn.Module, lwscale.apply_mup and
# lwscale.param_groups(model, base, rule=..., eta=..., wd=...) give both.
"""


def name_patterns(names_by_group: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each group's parameter names, with block indices ("blocks.3.") folded into "*" wherever
    the folded pattern still picks parameters of that group only."""

    def fold(name: str) -> str:
        return re.sub(r"(?<=\.)\d+(?=\.)|^\d+(?=\.)", "*", name)

    owners: dict[str, set[str]] = defaultdict(set)
    for group, names in names_by_group.items():
        for n in names:
            owners[fold(n)].add(group)
    out = {}
    for group, names in names_by_group.items():
        pats = [fold(n) if len(owners[fold(n)]) == 1 else n for n in names]
        out[group] = list(dict.fromkeys(pats))
    return out


def param_groups(spec, rule: str, width: int, eta: float, wd: float, classes: dict | None = None) -> list[dict]:
    """The AdamW groups of the spec's model (the built-in one or its ``model.factory``) at
    ``width`` under ``rule`` from base (eta, wd): name, class, width_mult, lr, weight_decay, params."""
    from lwscale.model.classes import group_hparams, group_keys
    from lwscale.science.rules import get_rule
    from lwscale.sweep.plan import model_config, param_classes

    r = get_rule(rule)
    keys = group_keys(param_classes(spec, model_config(spec, width, r), classes))
    patterns = name_patterns({k.label(): names for k, names in keys.items()})
    out = []
    for key in sorted(keys, key=lambda k: (k.cls, k.width_mult)):
        lr, cwd = group_hparams(key, r, eta, wd, spec.optimizer.wd_mode, spec.model.vector_lr_mult)
        out.append(
            {
                "name": key.label(),
                "class": key.cls,
                "width_mult": float(key.width_mult),
                "lr": float(lr),
                "weight_decay": float(cwd),
                "params": patterns[key.label()],
            }
        )
    return out


def emit_yaml(spec, result: dict, classes: dict | None = None) -> str:
    """The YAML document ``transfer --emit yaml`` prints, from ``transfer``'s result."""
    p, t = result["proxy_width"], result["target_width"]
    doc = {
        "proxy_width": p,
        "target_width": t,
        "base_width": result["base_width"],
        "wd_mode": result["wd_mode"],
        "rules": {
            e["rule"]: {
                "eta": float(e["eta"]),
                "wd": float(e["wd"]),
                "source": e["source"],
                "param_groups": param_groups(spec, e["rule"], t, e["eta"], e["wd"], classes),
            }
            for e in result["rules"]
        },
    }
    head = (
        f"# lwscale transfer --emit yaml: AdamW parameter groups for width {t}, from the (eta, wd) found at width "
        f"{p}\n# (base coordinates at the base width {result['base_width']}; run {result['run']}).\n"
    )
    return head + HOW_TO + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)
