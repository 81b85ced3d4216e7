"""The ``lwscale`` command line: a thin Typer layer over plan, runners, store and reports.

User mistakes (bad spec, missing file, inconsistent flags) print one line and exit 2.
Exit codes of ``sweep``: 0 when every cell is done or diverged, 1 when some failed,
2 for a user error, 130 when interrupted.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .errors import UserError

app = typer.Typer(
    name="lwscale",
    help="Tune AdamW's lr and weight decay on a small proxy, transfer them to a wide target "
    "(arXiv 2510.15262: matrix lr ~ 1/m, matrix wd ~ sqrt(m); vector lr constant, wd 0).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="print the version and exit", is_eager=True),
) -> None:
    """lwscale: layerwise width-scaling rules for AdamW's lr and weight decay."""
    if version:
        from . import __version__

        console.print(f"lwscale {__version__}")
        raise typer.Exit()


def note(msg: str) -> None:
    console.print(f"[dim]{msg}[/]", soft_wrap=True)


@app.command()
def sweep(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="the sweep spec (YAML); see configs/"),
    out: Optional[Path] = typer.Option(None, "--out", help="override the spec's out_dir"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and a wall-time estimate; train nothing"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="also rerun cells recorded as failed"),
    cells_per_stack: Optional[int] = typer.Option(None, "--cells-per-stack", min=1,
                                                  help="cells trained together as one model (overrides the spec)"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (overrides the spec)"),
) -> None:
    """Train every (width, rule, eta, wd, seed) cell of SPEC and write loss tables.

    The grid is in base coordinates (eta, wd) at the base width; each rule maps them to
    per-class (lr, wd) at every width. Finished cells are kept: rerunning resumes.
    """
    from .plan import make_plan
    from .reports.tables import cell_stats, loss_table, plan_table, timescale_warning
    from .runners.local import run_sweep
    from .spec import load_spec
    from .train import resolve_device

    spec = load_spec(spec_path)
    overrides = {}
    if cells_per_stack is not None:
        overrides["cells_per_stack"] = cells_per_stack
    if device is not None:
        overrides["device"] = device
    if overrides:
        from .spec import parse_spec

        data = spec.model_dump(mode="json")
        data["train"].update(overrides)
        spec = parse_spec(data, "command line")
    plan = make_plan(spec)
    console.print(plan_table(plan))
    warning = timescale_warning(plan)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    if dry_run:
        _dry_run(spec, plan, resolve_device(spec.train.device))
        return

    result = run_sweep(spec, out, retry_failed=retry_failed, progress=_RichProgress(spec), log=note)
    df = result.table
    stats = cell_stats(df)
    for rule in sorted(df["rule"].unique()):
        for width in sorted(df["width"].unique()):
            if ((stats["rule"] == rule) & (stats["width"] == width)).any():
                console.print(loss_table(stats, rule, int(width)))
    counts = df.drop_duplicates("cell_id")["status"].value_counts().to_dict()
    console.print("cells: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    console.print(f"results: {result.store.root / 'results.csv'}")
    if result.interrupted:
        console.print("[yellow]interrupted[/]: finished cells are kept; run the same command again to resume.")
        raise typer.Exit(130)
    if counts.get("failed", 0):
        for f in result.summary.failures[:3]:
            console.print(f"[red]failed:[/] {f.splitlines()[0]}")
        console.print("some cells failed; rerun with --retry-failed to try them again")
        raise typer.Exit(1)


class _RichProgress:
    """Rich bars for a sweep: overall cells, and the current stack's step, best loss,
    tokens/s per cell and (on a GPU with a known peak) the stack's MFU."""

    def __init__(self, spec):
        self.spec, self.bars = spec, None

    def start(self, total_cells: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("{task.fields[speed]}"), console=console)
        self.bars.start()
        self.overall = self.bars.add_task("cells", total=total_cells, speed="")
        self.current = self.bars.add_task("stack", total=1, speed="")

    def stack_started(self, stack) -> None:
        import time

        from .model import flops_per_token
        from .perf import peak_flops
        from .train import resolve_device, resolve_precision

        device = resolve_device(self.spec.train.device)
        self.width, self.k = stack[0].width, len(stack)
        self.tokens_per_step = self.spec.train.batch_size * stack[0].model.seq_len
        self.flops_per_step = self.tokens_per_step * flops_per_token(stack[0].model) * self.k
        self.peak = peak_flops(device, resolve_precision(self.spec, device))
        self.last = (0, time.perf_counter())
        self.bars.reset(self.current, total=stack[0].steps, description=f"width {self.width} x{self.k}", speed="")

    def step(self, step, steps, losses) -> None:
        import time

        finite = [x for x in losses if not math.isnan(x)]
        desc = f"width {self.width} x{self.k}" + (f" loss {min(finite):.3f}" if finite else "")
        now = time.perf_counter()
        (s0, t0), self.last = self.last, (step, now)
        speed = ""
        if step > s0 and now > t0:
            rate = (step - s0) / (now - t0)
            speed = f"{rate * self.tokens_per_step:,.0f} tok/s/cell"
            if self.peak:
                speed += f", MFU {rate * self.flops_per_step / self.peak:.0%}"
        self.bars.update(self.current, completed=step, description=desc, speed=speed)

    def stack_finished(self, stack) -> None:
        self.bars.advance(self.overall, len(stack))
        if self.bars.finished:
            self.bars.stop()

    def __del__(self):
        if self.bars is not None:
            self.bars.stop()


@app.command()
def diagnose(
    run_dir: Optional[Path] = typer.Argument(None, metavar="[RUN_DIR]",
                                             help="a run directory; default: the latest under ./runs"),
) -> None:
    """sigma_max and sublayer gain per width and matrix type, the width-exponent fit alpha,
    the 1/2-exponent check and the implied custom rule; the Figure-1 check for explicit pairs.

    Writes RUN_DIR/diagnose.md, diagnose.json and figures/diagnose-*.png (docs/diagnostics.md).
    """
    from .reports.diagnose import run_diagnose

    run_diagnose(run_dir, console)


@app.command("coord-check")
def coord_check(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="a sweep spec (YAML): its widths, rules and model"),
    steps: int = typer.Option(4, "--steps", min=1, help="training steps to follow from init"),
    eta: Optional[float] = typer.Option(None, "--eta", help="base lr (base coordinates); default: the grid's largest"),
    seeds: int = typer.Option(3, "--seeds", min=1, help="seeds (init and data) to average over"),
    out: Optional[Path] = typer.Option(None, "--out", help="where the plot goes; default: <out_dir>/<name>/figures"),
) -> None:
    """microsoft/mup's coordinate check on our model: mean |activation| per module type over
    the first steps at every width, per rule, with the spread max/min across widths.
    muP rules stay within about 1.2x; SP grows with width."""
    from .reports.coord import run_coord_check

    run_coord_check(spec_path, steps, eta, out, console, seeds)


def _dry_run(spec, plan, dev) -> None:
    from .runners.stacking import choose_k
    from .runners.local import make_stacks
    from .train import time_steps

    k = choose_k(spec, plan.cells, dev, note)
    stacks = make_stacks(plan.cells, k)
    per_step: dict = {}
    total = 0.0
    for stack in stacks:
        key = (stack[0].model, len(stack))
        if key not in per_step:
            per_step[key] = time_steps(stack[0].model, spec, dev, k=len(stack))
        total += per_step[key] * stack[0].steps
    console.print(f"dry run: {len(plan.cells)} cells in {len(stacks)} stacks of up to {max(k.values())} on {dev}; "
                  f"estimated training time {_fmt_s(total)} (from a quick measured step time; data preparation "
                  "and evaluation not included)")


def _fmt_s(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def main() -> None:
    try:
        app()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
