"""The terminal every command prints to, and its two kinds of aside: a note and a warning."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def note(msg: str) -> None:
    console.print(f"[dim]{msg}[/]", soft_wrap=True)


def warn(msg: str) -> None:
    console.print(f"[yellow]warning:[/] {msg}", soft_wrap=True)
