"""How ``lwscale ... --help`` reads: no type placeholder after a flag (Typer writes ``<bool>``,
plain Click ``BOOLEAN`` for some), and plain usage lines (``SPEC``, ``[RUN_DIR]``,
``[KEY=VALUE]...``, where Typer writes ``{SPEC}`` and ``[[RUN_DIR]]``). Options that take one
of a few words name them in their metavar (``--runner local|gpus|slurm``); the values are
checked where they are used, so a wrong one is the usual one-line error.

``plain_help(app)`` gives every group and command of a Typer app these classes.
"""

from __future__ import annotations

import re

import typer
from typer.core import TyperCommand, TyperGroup


def _plain_params(params: list) -> list:
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""  # a flag takes no value: show none
    return params


def _is_argument(p) -> bool:  # Typer vendors its own Click: no isinstance against the click package
    return getattr(p, "param_type_name", None) == "argument"


def _usage_piece(p) -> str:
    name = re.sub(r"[\[\]{}]|\.\.\.$", "", p.metavar or p.name.upper())
    piece = name if p.required else f"[{name}]"
    return piece + ("..." if p.nargs != 1 else "")


class PlainCommand(TyperCommand):
    def get_params(self, ctx) -> list:
        return _plain_params(super().get_params(ctx))

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [_usage_piece(p) for p in self.get_params(ctx) if _is_argument(p)]


class PlainGroup(TyperGroup):
    def get_params(self, ctx) -> list:
        return _plain_params(super().get_params(ctx))


def plain_help(app: typer.Typer) -> None:
    """Every command of ``app`` and of its sub-apps gets ``PlainCommand``, every group
    ``PlainGroup``, unless it names a class of its own."""

    def own(cls, default) -> bool:  # unset is None or a Typer placeholder object
        return isinstance(cls, type) and cls is not default

    if not own(app.info.cls, TyperGroup):
        app.info.cls = PlainGroup
    for info in app.registered_commands:
        if not own(info.cls, TyperCommand):
            info.cls = PlainCommand
    for group in app.registered_groups:
        if not own(group.cls, TyperGroup):
            group.cls = PlainGroup
        if group.typer_instance is not None:
            plain_help(group.typer_instance)
