"""Layer 2, the science as pure code (no torch): the scaling rules and the lr schedule.

``rules.py`` is the rule table; docs/science.md derives it."""
