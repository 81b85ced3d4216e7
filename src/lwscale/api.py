"""The library API, for your own ``nn.Module``: optimizer groups, the muP parametrization, checks.

This module is the public face; the code is in ``lwscale/model/mup.py`` (the muP pieces) and
``lwscale/science/rules.py`` (the rules). ``import lwscale`` exposes the same names lazily.
"""

from lwscale.model.mup import *  # noqa: F403 (the face re-exports the whole API)
from lwscale.model.mup import __all__  # noqa: F401
