"""The ``lwscale`` Typer app and its root options; the commands are registered in main.py.

The command line is a thin layer over plan, runners, store and reports.

User mistakes (bad spec, missing file, inconsistent flags) print one line and exit 2.
Exit codes of ``sweep``: 0 when every cell is done or diverged (a sweep waits for cells
that other workers are training), 1 when some failed, 2 for a user error, 130 when
interrupted.
"""

from __future__ import annotations

import typer

from lwscale.cli.console import console

app = typer.Typer(
    name="lwscale",
    help="Tune AdamW's lr and weight decay on a small proxy, transfer them to a wide target "
    "(arXiv 2510.15262: matrix lr ~ 1/m, matrix wd ~ sqrt(m); vector lr constant, wd 0).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    # an option callback: the group's own body runs only with a command, so `lwscale --version` alone
    # would fail with "Missing command"
    if value:
        from lwscale.core.version import __version__

        console.print(f"lwscale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="print the version and exit",
        is_eager=True,
        callback=_print_version,
        expose_value=False,
    ),
) -> None:
    """lwscale: layerwise width-scaling rules for AdamW's lr and weight decay."""
