"""Layer 9, the ``lwscale`` command line: Typer commands, one module per group, over the layers below."""

from lwscale.cli.main import app, main

__all__ = ["app", "main"]
