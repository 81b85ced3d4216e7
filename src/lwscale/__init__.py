"""lwscale: width-scaling rules for AdamW's lr and weight decay (arXiv 2510.15262).

The library API (``lwscale.api``) is importable from here: ``param_groups``, ``apply_mup``,
``check_mup``, ``check_optimizer``, ``scale_hparams``, the rule ``PRESETS`` and ``get_rule``.
They load on first use, so ``import lwscale`` (and the CLI) stays fast.
"""
__version__ = "0.1.0"

# api.__all__, written out: reading it from lwscale.api would import torch on `import lwscale`.
# tests/test_api.py asserts the two lists are equal.
_API = ("APIError", "ParamGroups", "param_groups", "classify_params", "apply_mup", "check_mup", "check_optimizer",
        "scale_hparams", "PRESETS", "DEFAULT_RULE", "Rule", "custom", "get_rule", "timescale", "ParamInfo")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'lwscale' has no attribute {name!r}")
