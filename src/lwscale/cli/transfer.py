"""``lwscale transfer``: the proxy's optimum at the target, per rule and class, with regret, shift
and the validity gate; writes transfer.csv and transfer.json, and prints the tables."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from lwscale.cli.console import console, note
from lwscale.cli.progress import RichProgress
from lwscale.cli.reports import RUN_DIR_HELP
from lwscale.core.errors import UserError
from lwscale.core.log import quiet


def transfer(
    run_dir: Optional[Path] = typer.Argument(None, metavar="[RUN_DIR]", help=RUN_DIR_HELP),
    proxy_width: Optional[int] = typer.Option(
        None, "--proxy-width", help="width the optimum is read from (default: smallest)"
    ),
    target_width: Optional[int] = typer.Option(
        None, "--target-width", help="width to transfer it to (default: largest)"
    ),
    proxy_steps: Optional[int] = typer.Option(
        None,
        "--proxy-steps",
        help="the proxy's training length, for a run of several (default: the base horizon, train.base_steps)",
    ),
    target_steps: Optional[int] = typer.Option(
        None,
        "--target-steps",
        help="the target's training length: any "
        "number of steps, cells at it or not (default: the longest the run "
        "trained the target width)",
    ),
    rule: Optional[list[str]] = typer.Option(None, "--rule", help="a rule of the run (repeatable; default: all)"),
    eta: Optional[float] = typer.Option(
        None,
        "--eta",
        help="use this base lr eta (base coordinates: the value at the "
        "base width) instead of the proxy's optimum; needs --wd",
    ),
    wd: Optional[float] = typer.Option(
        None,
        "--wd",
        help="use this base weight decay lambda (base coordinates, "
        "PyTorch-coupled) instead of the proxy's optimum; needs --eta",
    ),
    refined: bool = typer.Option(
        False,
        "--refined",
        help="refine the proxy optimum by a local quadratic fit in (log2 eta, log2 lambda) instead of the grid argmin",
    ),
    train: bool = typer.Option(
        False,
        "--train",
        help="train the competitors at the target on fresh seeds (not the "
        "grid's): each rule's transferred point, the best target cell of any rule and each "
        "rule's own best; regrets and the ranking are then read on those seeds",
    ),
    seeds: int = typer.Option(3, "--seeds", min=2, help="fresh seeds for --train (at least 2, for a standard error)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON on stdout"),
    emit: Optional[str] = typer.Option(
        None,
        "--emit",
        metavar="yaml",
        help="print only the target's AdamW "
        "parameter groups (per rule: lr, weight_decay and the parameters' name "
        "patterns) as YAML for a training script",
    ),
) -> None:
    """Transfer the proxy's optimum to the target: per-rule, per-class (lr, wd), regret and shift.

    Prints, for each rule and parameter class, the proxy's and the target's (lr, wd) and tau, at the target's width
    and training length (--target-steps; a rule's horizon exponent h scales wd by (S/S0)^-h).

    With target cells: first the validity gate (wider is better at the optimum, and the target's optimum completes
    at least 3 AdamW timescales), then the regret against the best target cell, the shift of the optimum, the
    sigma_max ratio.

    The optima are picked on the grid's seeds. Without --train the regrets are read on those same seeds (a
    selection-biased estimate); with --train on fresh seeds. Every difference is paired seed by seed.

    Metrics need target cells at --target-steps; without them only the (lr, wd) are printed.

    Writes transfer.csv and transfer.json into RUN_DIR.
    """
    from lwscale.reports.run import load_run
    from lwscale.reports.transfer import competitors, write_transfer
    from lwscale.reports.transfer import transfer as do_transfer

    if emit is not None and emit != "yaml":
        raise UserError(f"--emit takes yaml, got {emit!r}")
    as_json = as_json or emit is not None  # quiet: stdout holds the one document
    run = load_run(run_dir)
    proxy_width, target_width = proxy_width or run.widths[0], target_width or run.widths[-1]
    result = do_transfer(
        run, proxy_width, target_width, rule, eta, wd, refined, proxy_steps=proxy_steps, target_steps=target_steps
    )
    if train:
        from lwscale.runners.targets import fresh_seeds, train_points

        fresh = fresh_seeds(run.spec, seeds)
        trained = train_points(
            run.spec,
            run.root,
            target_width,
            competitors(result),
            fresh,
            log=note if not as_json else quiet,
            progress=None if as_json else RichProgress(run.spec),
            steps=result["target_steps"],
        )
        if trained is not None and trained.interrupted:  # nothing is judged on half the competitors
            said = "finished cells are kept; run the same command again to resume."
            if as_json:  # stdout holds only the JSON document
                print(f"interrupted: {said}", file=sys.stderr)
            else:
                console.print(f"[yellow]interrupted[/]: {said}")
            raise typer.Exit(130)
        run = load_run(run.root)
        result = do_transfer(
            run,
            proxy_width,
            target_width,
            rule,
            eta,
            wd,
            refined,
            eval_seeds=fresh,
            proxy_steps=result["proxy_steps"],
            target_steps=result["target_steps"],
        )
    text = write_transfer(run.root, result)
    if emit:
        from lwscale.reports.emit import emit_yaml

        print(emit_yaml(run.spec, result, run.classes), end="")
        return
    if as_json:
        print(text)
        return
    print_transfer(console, result)
    console.print(f"written: {run.root / 'transfer.csv'}, {run.root / 'transfer.json'}")


def print_transfer(console, result: dict) -> None:
    from lwscale.reports.gate import gate_tab
    from lwscale.reports.transfer_tables import hparam_tab, metrics_tab, ranking_tab

    console.print(hparam_tab(result).rich())
    g = gate_tab(result)
    if g is not None:
        console.print(g.rich())
    m = metrics_tab(result)
    if m is not None:
        console.print(m.rich())
        ev = result.get("evaluation") or {}
        if ev.get("note"):
            console.print(("" if ev["fresh"] else "[yellow]note:[/] ") + ev["note"], soft_wrap=True)
    tab = ranking_tab(result.get("ranking", []))
    if tab is not None:
        console.print(tab.rich())
    for u in result.get("unranked") or []:
        console.print(f"[yellow]not ranked:[/] {u['rule']}: {u['status']} at its transferred point", soft_wrap=True)
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
