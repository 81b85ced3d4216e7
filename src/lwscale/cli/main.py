"""The ``lwscale`` command: every command registered on the app, in the order ``--help`` lists them,
and ``main``, which turns a user's mistake into one line and exit 2."""

from __future__ import annotations

import sys

from lwscale.cli.app import app
from lwscale.cli.data import app as data_app
from lwscale.cli.help import plain_help
from lwscale.cli.reports import coord_check, diagnose, plot, report
from lwscale.cli.status import status
from lwscale.cli.sweep import sweep
from lwscale.cli.transfer import transfer
from lwscale.core.errors import UserError

app.command()(sweep)
app.command()(diagnose)
app.command("coord-check")(coord_check)
app.command()(plot)
app.command()(transfer)
app.command()(report)
app.command()(status)


app.add_typer(data_app, name="data")
plain_help(app)  # no <bool> after flags, plain usage lines (lwscale/cli/help.py)


def main() -> None:
    try:
        app()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
