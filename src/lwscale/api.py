"""The library API, for your own ``nn.Module``: optimizer groups, the muP parametrization, checks.

This module is the public face; the code is in ``lwscale/model/mup.py`` (the muP pieces) and
``lwscale/science/rules.py`` (the rules). ``import lwscale`` exposes the same names lazily.
"""

from lwscale.model.mup import (
    DEFAULT_RULE,
    PRESETS,
    APIError,
    ParamGroups,
    ParamInfo,
    Rule,
    apply_mup,
    check_mup,
    check_optimizer,
    classify_params,
    custom,
    get_rule,
    param_groups,
    scale_hparams,
    timescale,
)

__all__ = [
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
]
