"""``lwscale sweep SPEC KEY=VALUE ...``: spec keys overridden on the command line.

Each override is a dotted key and a YAML value (``train.steps=50``, ``grid.wd='[0.1, 0.3]'``,
``model.base_width=null``). They are applied to the spec's resolved data and validated as
the file is (``spec.with_overrides``), so an unknown key or a bad value is the same one-line
error, naming the override; the run's ``spec.yaml`` then records the overridden values.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from lwscale.sweep.spec import Spec, SpecError, with_overrides

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
SOURCE = "command line"


def parse_overrides(args: list[str]) -> dict[str, tuple[str, Any]]:
    """{dotted key: (the argument as given, its YAML value)}; a malformed one is a SpecError."""
    out: dict[str, tuple[str, Any]] = {}
    for arg in args:
        key, eq, text = arg.partition("=")
        key = key.strip()
        if not eq or not _KEY.match(key):
            raise SpecError(
                f"{arg!r} is not KEY=VALUE (a dotted spec key and a YAML value, e.g. train.steps=50 "
                "or grid.wd='[0.1, 0.3]')"
            )
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpecError(f"command-line override {arg}: malformed YAML value ({problem})") from None
        out[key] = (arg, value)
    return out


def apply_overrides(spec: Spec, args: list[str] | None) -> Spec:
    """``spec`` with the KEY=VALUE ``args`` applied and validated; errors name the override."""
    if not args:
        return spec
    given = parse_overrides(args)
    try:
        return with_overrides(spec, SOURCE, dotted={k: v for k, (_, v) in given.items()})
    except SpecError as exc:
        msg = str(exc).removeprefix(f"{SOURCE}: ")
        path = msg.split(": ", 1)[0]
        culprits = [
            arg
            for key, (arg, _) in given.items()
            if key == path or key.startswith(path + ".") or path.startswith(key + ".")
        ]
        if not culprits and path.endswith(" is not a section (it holds a value)"):
            culprits = [arg for key, (arg, _) in given.items() if key.startswith(path.split(" ")[0] + ".")]
        which = " ".join(culprits or (arg for arg, _ in given.values()))
        raise SpecError(f"command-line override{'s' if len(culprits) != 1 else ''} {which}: {msg}") from None
