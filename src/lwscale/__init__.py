"""lwscale: width-scaling rules for AdamW's lr and weight decay (arXiv 2510.15262).

The library API (``lwscale.api``) is importable from here: ``param_groups``, ``apply_mup``,
``check_mup``, ``check_optimizer``, ``scale_hparams``, the rule ``PRESETS`` and ``get_rule``.
They load on first use, so ``import lwscale`` (and the CLI) stays fast.
"""

import os

from lwscale.core.version import __version__

# OpenMP (libgomp) reads this once, when torch loads it, so it is set here, on the import path
# of everything in lwscale (the CLI, lwscale.api, run_sweep), before any lwscale module imports
# torch: idle worker threads spin briefly, then sleep. With libgomp's long default spin, any
# other busy process on the cores made a small model's CPU step ~100x slower; 10,000 spins
# cost nothing on an idle CPU (docs/performance.md, benchmarks/openmp_spin.py). A user's own
# OMP_WAIT_POLICY or GOMP_SPINCOUNT wins; a torch imported before lwscale keeps its setting.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

# api.__all__, written out: reading it from lwscale.api would import torch on `import lwscale`.
# tests/model/test_api.py asserts the two lists are equal.
_API = (
    "APIError",
    "ParamGroups",
    "param_groups",
    "classify_params",
    "apply_mup",
    "check_mup",
    "check_optimizer",
    "scale_hparams",
    "PRESETS",
    "DEFAULT_RULE",
    "Rule",
    "custom",
    "get_rule",
    "timescale",
    "ParamInfo",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from lwscale import api

        return getattr(api, name)
    raise AttributeError(f"module 'lwscale' has no attribute {name!r}")
