"""``lwscale plot``, ``report``, ``diagnose`` and ``coord-check``: the read-only commands over a run
(coord-check reads a spec), printing what lwscale/reports returns."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lwscale.cli.console import console, note, warn
from lwscale.core.errors import UserError

RUN_DIR_HELP = "a run directory (default: the most recently modified run under ./runs)"


def diagnose(
    run_dir: Optional[Path] = typer.Argument(
        None, metavar="[RUN_DIR]", help="a run directory; default: the latest under ./runs"
    ),
) -> None:
    """sigma_max and sublayer gain per width and matrix type, and the width-exponent fit alpha.

    Also the 1/2-exponent check and the implied custom rule; the Figure-1 check for explicit pairs.

    Writes RUN_DIR/diagnose.md, diagnose.json and figures/diagnose-*.png (docs/diagnostics.md).
    """
    from lwscale.reports.diagnose import LAMBDA_SNIPPET_TITLE, write_diagnose
    from lwscale.reports.run import load_run

    run = load_run(run_dir)
    report = write_diagnose(run)
    for tab in report.tables:
        console.print(tab.rich())
    for n in report.notes:
        console.print(n, soft_wrap=True)
    if report.snippet:
        console.print("implied wd exponent as a rule for your spec:")
        console.print(report.snippet, markup=False, soft_wrap=True)
    if report.lambda_snippet:
        console.print(LAMBDA_SNIPPET_TITLE.lower() + ":")
        console.print(report.lambda_snippet, markup=False, soft_wrap=True)
    root = run.root
    console.print(
        f"wrote {root / 'diagnose.md'}, {root / 'diagnose.json'} and {len(report.data['figures'])} figures "
        f"in {root / 'figures'}"
    )


def coord_check(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="a sweep spec (YAML): its widths, rules and model"),
    steps: Optional[int] = typer.Option(
        None, "--steps", min=1, help="training steps to follow from init; default 4 (10 for a model.factory model)"
    ),
    eta: Optional[float] = typer.Option(None, "--eta", help="base lr (base coordinates); default: the grid's largest"),
    seeds: int = typer.Option(3, "--seeds", min=1, help="seeds (init and data) to average over"),
    out: Optional[Path] = typer.Option(None, "--out", help="where the plot goes; default: <out_dir>/<name>/figures"),
) -> None:
    """microsoft/mup's coordinate check: mean |activation| per module type over the first steps.

    At every width, per rule, with the spread max/min across widths: muP rules stay within about 1.2x.

    For the spec's model.factory model, a warning for each muP piece it lacks."""
    print_coord_check(spec_path, steps, eta, out, seeds)


def print_coord_check(
    spec_path: Path, steps: int | None, eta: float | None, out: Path | None, n_seeds: int = 3, console=console
) -> list:
    """The coordinate check of ``coord-check``: measured (lwscale/training/coord.py), printed as tables
    and drawn (lwscale/reports/coord.py). Returns the measurements."""
    from lwscale.reports.coord import coord_figure, coord_table
    from lwscale.sweep.spec import load_spec
    from lwscale.training.coord import FACTORY_STEPS, MUP_SPREAD
    from lwscale.training.coord import coord_check as measure

    spec = load_spec(spec_path)
    if steps is None:  # a muP readout's logits start at ~m^-1/2: its updates dominate after a few more steps
        steps = FACTORY_STEPS if spec.model.factory else 4
    if len(spec.model.widths) < 2:
        raise UserError(f"{spec_path}: model.widths: the coordinate check needs at least 2 widths")
    data = measure(spec, steps, eta, n_seeds)
    problems = data[0].problems if data else []
    for p in problems:
        console.print(f"[bold yellow]warning: muP pieces missing: {p}[/]", soft_wrap=True)
    for d in data:
        console.print(coord_table(d))
        worst = max(d.spread(t) for t in d.values)
        verdict = (
            ("within" if worst <= MUP_SPREAD else "OUTSIDE") + f" {MUP_SPREAD}x"
            if d.mup
            else "(SP: expected to grow with width)"
        )
        if problems and d.mup:
            verdict += " [yellow](muP pieces missing, see the warning above: transfer across widths will be off)[/]"
        console.print(f"{d.rule}: worst spread {worst:.2f}x {verdict}", soft_wrap=True)
    folder = Path(out) if out is not None else Path(spec.out_dir) / spec.name / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "coord-check.png"
    coord_figure(data, path)
    console.print(f"plot: {path}")
    return data


def plot(
    run_dir: Optional[Path] = typer.Argument(None, metavar="[RUN_DIR]", help=RUN_DIR_HELP),
    proxy_width: Optional[int] = typer.Option(
        None, "--proxy-width", help="width whose optimum is marked (default: smallest)"
    ),
    target_width: Optional[int] = typer.Option(
        None, "--target-width", help="target of the transfer figure (default: largest)"
    ),
    pdf: bool = typer.Option(False, "--pdf", help="also write each figure as PDF"),
    relative: bool = typer.Option(
        True,
        "--relative/--absolute",
        help="colour the heatmaps by each cell's loss above "
        "its panel's best cell, so every panel's valley shows (default), or by the loss "
        "itself on one shared scale",
    ),
) -> None:
    """Draw RUN_DIR's heatmaps, slices, transfer comparison and training curves into RUN_DIR/figures/."""
    from lwscale.reports.plots import plot_all
    from lwscale.reports.run import load_run

    run = load_run(run_dir)
    for p in plot_all(run, proxy_width, target_width, pdf, warn=warn, relative=relative):
        console.print(str(p))


def report(
    run_dir: Optional[Path] = typer.Argument(None, metavar="[RUN_DIR]", help=RUN_DIR_HELP),
    proxy_width: Optional[int] = typer.Option(
        None, "--proxy-width", help="transfer table's proxy (default: smallest width)"
    ),
    target_width: Optional[int] = typer.Option(
        None, "--target-width", help="transfer table's target (default: largest)"
    ),
) -> None:
    """Write RUN_DIR/report.md: the spec, loss tables, every figure, transfer and diagnostics.

    The diagnostics are run here (diagnose.md, diagnose.json and figures, as `lwscale diagnose` writes them), so
    the page is the same whether or not diagnose ran before."""
    from lwscale.reports.diagnose import write_diagnose
    from lwscale.reports.report import evaluation_seeds, write_report
    from lwscale.reports.run import load_run
    from lwscale.reports.transfer import transfer as do_transfer

    run = load_run(run_dir)
    try:
        write_diagnose(run)
    except UserError as exc:  # no cell has diagnostics: the page goes without (or with an older diagnose.md)
        note(f"no diagnostics: {exc}")
    widths = run.widths
    result = None
    if len(widths) > 1:
        p, t = proxy_width or widths[0], target_width or widths[-1]
        try:
            result = do_transfer(run, p, t, eval_seeds=evaluation_seeds(run, p, t))
        except UserError as exc:
            if proxy_width or target_width:
                raise
            note(f"no transfer table: {exc}")
    write_report(run, result)
    console.print(f"written: {run.root / 'report.md'}")
