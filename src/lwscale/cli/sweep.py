"""``lwscale sweep``: train a spec's cells and print its loss tables (or, with --dry-run, its cost)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lwscale.cli.console import console, note, warn
from lwscale.cli.dry_run import print_dry_run
from lwscale.cli.progress import RichProgress
from lwscale.data.floor import floor_note


def sweep(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="the sweep spec (YAML); see configs/"),
    overrides: Optional[list[str]] = typer.Argument(
        None,
        metavar="KEY=VALUE...",
        help="spec keys to override, dotted, with YAML values: train.steps=50 "
        "grid.wd='[0.1, 0.3]'; validated like the file and recorded in the run's spec.yaml",
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="override the spec's out_dir"),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="print the plan, the cells left to train and an estimate "
        "of their time (training, evaluation, data preparation); train and write nothing",
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="also rerun cells recorded as failed"),
    cells_per_stack: Optional[int] = typer.Option(
        None, "--cells-per-stack", min=1, help="cells trained together as one model (overrides the spec)"
    ),
    device: Optional[str] = typer.Option(
        None,
        "--device",
        metavar="auto|cpu|cuda|cuda:N",
        help="where cells train: auto (CUDA if there is one), cpu, cuda or cuda:N (overrides the spec's train.device)",
    ),
    runner: Optional[str] = typer.Option(
        None,
        "--runner",
        metavar="local|gpus|slurm",
        help="local (this process), gpus (one worker per visible GPU) or slurm "
        "(a job array); overrides the spec's runner.kind",
    ),
) -> None:
    """Train every (width, length, rule, eta, wd, seed) cell of SPEC and write loss tables.

    The grid is in base coordinates (eta, wd) at the base width.

    Each rule maps them to per-class (lr, wd) at every width and training length (train.steps may be a list).
    Finished cells are kept: rerunning resumes.

    KEY=VALUE arguments override keys of SPEC (dotted, YAML values), for this run and in its spec.yaml.
    """
    from lwscale.reports.tables import (
        cell_stats,
        loss_table,
        plan_table,
        rule_order,
        shared_cells_note,
        timescale_warning,
    )
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.overrides import apply_overrides
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import load_spec, with_overrides
    from lwscale.training.loop import resolve_device

    spec = apply_overrides(load_spec(spec_path), overrides)
    if overrides:
        from rich.markup import escape

        note(escape(f"overrides: {' '.join(overrides)}"))
    spec = with_overrides(spec, train={"cells_per_stack": cells_per_stack, "device": device}, runner={"kind": runner})
    from lwscale.reports.tracking import check_trackers

    check_trackers(spec)  # a tracker the spec names but that is not installed: one line, before any training
    plan = make_plan(spec)
    console.print(plan_table(plan))
    shared = shared_cells_note(plan)
    if shared:
        note(shared)
    warning = timescale_warning(plan)
    if warning:
        warn(warning)
    if dry_run:
        print_dry_run(spec, plan, resolve_device(spec.train.device), out, retry_failed)
        return

    if spec.runner.kind == "slurm":
        from lwscale.runners.cluster import submit_slurm

        submit_slurm(spec, out, retry_failed=retry_failed, log=note)
        return
    if spec.runner.kind == "gpus":
        from lwscale.runners.cluster import run_gpus

        result = run_gpus(spec, out, retry_failed=retry_failed, log=note)
    else:
        result = run_sweep(spec, out, retry_failed=retry_failed, progress=RichProgress(spec), log=note)
    df = result.table
    stats = cell_stats(df)
    panels = sorted({(int(w), int(s)) for w, s in zip(df["width"], df["steps"])})
    for rule in rule_order(spec, df["rule"]):  # as the spec lists them
        for width, steps in panels:
            if ((stats["rule"] == rule) & (stats["width"] == width) & (stats["steps"] == steps)).any():
                console.print(loss_table(stats, rule, width, steps if spec.multi_horizon else None))
    floor = floor_note(spec.data)
    if floor:
        console.print(floor)
    counts = df.drop_duplicates("cell_id")["status"].value_counts().to_dict()
    console.print("cells: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    console.print(f"results: {result.store.root / 'results.csv'}")
    if not result.interrupted:
        from lwscale.reports.tracking import log_trackers

        log_trackers(spec, result.store.root, log=note)  # from the records, after the training
    if result.interrupted:
        console.print("[yellow]interrupted[/]: finished cells are kept; run the same command again to resume.")
        raise typer.Exit(130)
    if counts.get("failed", 0):
        for f in result.summary.failures[:3]:
            console.print(f"[red]failed:[/] {f.splitlines()[0]}")
        console.print("some cells failed; rerun with --retry-failed to try them again")
        raise typer.Exit(1)
