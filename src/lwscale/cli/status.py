"""``lwscale status``: where a run stands, once, watched, or as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lwscale.cli.console import console
from lwscale.core.errors import UserError


def status(
    run_dir: Optional[Path] = typer.Argument(
        None, metavar="[RUN_DIR]", help="a run directory; default: the latest under ./runs"
    ),
    watch: bool = typer.Option(False, "--watch", help="refresh until every cell is finished (Ctrl-C to stop)"),
    interval: float = typer.Option(5.0, "--interval", min=0.1, help="seconds between refreshes with --watch"),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="print the status as JSON on stdout: counts per width and "
        "status, running stacks, failures, the time left per width and its basis",
    ),
) -> None:
    """Cells done, diverged, failed, running and pending per width, the running stacks, and the time left.

    The time left is priced per width from that width's measured seconds per step (a width not measured yet:
    scaled by FLOPs from the nearest one), and says which."""
    from lwscale.rundir.status import StatusReader, render, to_json
    from lwscale.rundir.store import find_run

    if as_json and watch:
        raise UserError("--json prints the status once; leave out --watch")
    reader = StatusReader(find_run(run_dir))  # spec and plan once; each refresh rereads records and claims
    if as_json:
        import json

        print(json.dumps(to_json(reader.read()), indent=1))
        return
    if not watch:
        console.print(render(reader.read()))
        return
    import time

    from rich.live import Live

    try:
        st = reader.read()
        with Live(render(st), console=console, auto_refresh=False) as live:
            while st.total["running"] + st.total["pending"] > 0:
                time.sleep(interval)
                st = reader.read()
                live.update(render(st), refresh=True)
    except KeyboardInterrupt:
        pass
