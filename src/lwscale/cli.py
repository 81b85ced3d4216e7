"""The ``lwscale`` command line: a thin Typer layer over plan, runners, store and reports.

User mistakes (bad spec, missing file, inconsistent flags) print one line and exit 2.
Exit codes of ``sweep``: 0 when every cell is done or diverged (a sweep waits for cells
that other workers are training), 1 when some failed, 2 for a user error, 130 when
interrupted.
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
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def _print_version(value: bool) -> None:
    # an option callback: the group's own body runs only with a command, so `lwscale --version` alone
    # would fail with "Missing command"
    if value:
        from . import __version__

        console.print(f"lwscale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="print the version and exit", is_eager=True,
                                 callback=_print_version, expose_value=False),
) -> None:
    """lwscale: layerwise width-scaling rules for AdamW's lr and weight decay."""


def note(msg: str) -> None:
    console.print(f"[dim]{msg}[/]", soft_wrap=True)


def warn(msg: str) -> None:
    console.print(f"[yellow]warning:[/] {msg}", soft_wrap=True)


@app.command()
def sweep(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="the sweep spec (YAML); see configs/"),
    overrides: Optional[list[str]] = typer.Argument(
        None, metavar="KEY=VALUE...", help="spec keys to override, dotted, with YAML values: train.steps=50 "
        "grid.wd='[0.1, 0.3]'; validated like the file and recorded in the run's spec.yaml"),
    out: Optional[Path] = typer.Option(None, "--out", help="override the spec's out_dir"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, the cells left to train and an estimate "
                                 "of their time (training, evaluation, data preparation); train and write nothing"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="also rerun cells recorded as failed"),
    cells_per_stack: Optional[int] = typer.Option(None, "--cells-per-stack", min=1,
                                                  help="cells trained together as one model (overrides the spec)"),
    device: Optional[str] = typer.Option(None, "--device", metavar="auto|cpu|cuda|cuda:N",
                                         help="where cells train: auto (CUDA if there is one), cpu, cuda or cuda:N "
                                         "(overrides the spec's train.device)"),
    runner: Optional[str] = typer.Option(None, "--runner", metavar="local|gpus|slurm",
                                         help="local (this process), gpus (one worker per visible GPU) or slurm "
                                         "(a job array); overrides the spec's runner.kind"),
) -> None:
    """Train every (width, length, rule, eta, wd, seed) cell of SPEC and write loss tables.

    The grid is in base coordinates (eta, wd) at the base width.

    Each rule maps them to per-class (lr, wd) at every width and training length (train.steps may be a list).
    Finished cells are kept: rerunning resumes.

    KEY=VALUE arguments override keys of SPEC (dotted, YAML values), for this run and in its spec.yaml.
    """
    from .overrides import apply_overrides
    from .plan import make_plan
    from .reports.tables import cell_stats, loss_table, plan_table, rule_order, shared_cells_note, timescale_warning
    from .runners.local import run_sweep
    from .spec import load_spec, with_overrides
    from .train import resolve_device

    spec = apply_overrides(load_spec(spec_path), overrides)
    if overrides:
        from rich.markup import escape

        note(escape(f"overrides: {' '.join(overrides)}"))
    spec = with_overrides(spec, train={"cells_per_stack": cells_per_stack, "device": device},
                          runner={"kind": runner})
    from .tracking import check_trackers

    check_trackers(spec)   # a tracker the spec names but that is not installed: one line, before any training
    plan = make_plan(spec)
    console.print(plan_table(plan))
    shared = shared_cells_note(plan)
    if shared:
        note(shared)
    warning = timescale_warning(plan)
    if warning:
        warn(warning)
    if dry_run:
        _dry_run(spec, plan, resolve_device(spec.train.device), out, retry_failed)
        return

    if spec.runner.kind == "slurm":
        from .runners.submitit_runner import submit_slurm

        submit_slurm(spec, out, retry_failed=retry_failed, log=note)
        return
    if spec.runner.kind == "gpus":
        from .runners.submitit_runner import run_gpus

        result = run_gpus(spec, out, retry_failed=retry_failed, log=note)
    else:
        result = run_sweep(spec, out, retry_failed=retry_failed, progress=_RichProgress(spec), log=note)
    df = result.table
    stats = cell_stats(df)
    panels = sorted({(int(w), int(s)) for w, s in zip(df["width"], df["steps"])})
    for rule in rule_order(spec, df["rule"]):     # as the spec lists them
        for width, steps in panels:
            if ((stats["rule"] == rule) & (stats["width"] == width) & (stats["steps"] == steps)).any():
                console.print(loss_table(stats, rule, width, steps if spec.multi_horizon else None))
    counts = df.drop_duplicates("cell_id")["status"].value_counts().to_dict()
    console.print("cells: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    console.print(f"results: {result.store.root / 'results.csv'}")
    if not result.interrupted:
        from .tracking import log_trackers

        log_trackers(spec, result.store.root, log=note)   # from the records, after the training
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
    """sigma_max and sublayer gain per width and matrix type, and the width-exponent fit alpha.

    Also the 1/2-exponent check and the implied custom rule; the Figure-1 check for explicit pairs.

    Writes RUN_DIR/diagnose.md, diagnose.json and figures/diagnose-*.png (docs/diagnostics.md).
    """
    from .reports.diagnose import run_diagnose

    run_diagnose(run_dir, console)


@app.command("coord-check")
def coord_check(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="a sweep spec (YAML): its widths, rules and model"),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="training steps to follow from init; "
                                        "default 4 (10 for a model.factory model)"),
    eta: Optional[float] = typer.Option(None, "--eta", help="base lr (base coordinates); default: the grid's largest"),
    seeds: int = typer.Option(3, "--seeds", min=1, help="seeds (init and data) to average over"),
    out: Optional[Path] = typer.Option(None, "--out", help="where the plot goes; default: <out_dir>/<name>/figures"),
) -> None:
    """microsoft/mup's coordinate check: mean |activation| per module type over the first steps.

    At every width, per rule, with the spread max/min across widths: muP rules stay within about 1.2x.

    For the spec's model.factory model, a warning for each muP piece it lacks."""
    from .reports.coord import run_coord_check

    run_coord_check(spec_path, steps, eta, out, console, seeds)


# above this many FLOPs per training step of one cell, a CPU dry run does not time steps:
# one step would take minutes (e.g. configs/gpu-scale.yaml's width 2048 is ~2e13 FLOPs)
CPU_TIMING_MAX_FLOPS = 2e11


def _load_data(spec, device, todo: list, timed_synthetic: bool) -> tuple[float | None, str]:
    """Load the spec's data as the sweep will (cached; memory-mapped), so that data that cannot
    feed this spec (a validation set larger than the corpus, ids outside the vocabulary) is
    one line from the dry run too, not an error after it; and time it. Returns (seconds or
    None, a note on what they cover). The synthetic source's training stream is priced by generating
    its first missing chunk (kept in the cache for the sweep) times the chunks still missing;
    with ``timed_synthetic`` False (a spec too large to time here) it is not generated at all."""
    import time

    import torch

    from .data import load_dataset

    if spec.data.source == "synthetic" and not timed_synthetic:
        return None, "the synthetic teacher is too large to run here"
    m = spec.model
    t0 = time.perf_counter()
    dataset = load_dataset(spec.data, m.seq_len, spec.train.batch_size, spec.train.eval_tokens,
                           device if spec.data.source == "synthetic" else torch.device("cpu"),
                           max_width=max(m.widths), depth=m.depth, head_dim=m.head_dim, log=note)
    seconds = time.perf_counter() - t0
    if spec.data.source != "synthetic" or not todo:
        return seconds, "measured; cached for the sweep"
    need = max(c.steps for c in todo) * spec.train.batch_size
    missing = []
    for seed in sorted({c.seed for c in todo}):
        stream = dataset.stream(seed)
        n_chunks = -(-need // stream.cfg.chunk_seqs)
        missing += [(stream, i) for i in range(n_chunks) if not stream._path(i).exists()]
    if missing:
        t0 = time.perf_counter()
        stream, i = missing[0]
        stream.chunk(i)
        seconds += (time.perf_counter() - t0) * len(missing)
    return seconds, (f"measured: the teacher's validation set, and the {len(missing)} missing training chunk(s) "
                     "at the time of the first" if missing else "measured; cached for the sweep")


def _evaluations(steps: int, interval: int) -> int:
    """Evaluations a cell of ``steps`` runs: at step 0, every ``interval`` steps, and at the end."""
    return 1 + (steps - 1) // interval + 1


def _dry_run(spec, plan, dev, out, retry_failed: bool) -> None:
    """The plan's cost on ``dev`` without training: the cells a sweep of ``spec`` into its run
    directory would train (finished records skipped, a changed spec refused as the sweep
    refuses it), and their time: training from a quick measured step time, evaluation
    (eval_tokens at every eval point) at the measured forward speed, and data preparation."""
    import time

    from .claims import read_claims
    from .model import flops_per_token
    from .runners.local import make_stacks
    from .runners.stacking import choose_k
    from .status import fmt_duration
    from .store import FINISHED, Store
    from .train import time_steps

    store = Store(Store.root_for(spec, out))
    store.check_spec(spec)                     # the sweep's refusal of a changed spec, before any timing
    records = {c.id: store.read_record(c.id) for c in plan.cells}
    for w in store.warnings:
        warn(w)
    timeout_s, now = spec.runner.claim_timeout_minutes * 60, time.time()
    live = {cid for cid, cl in read_claims(store.root).items() if not cl.stale(timeout_s, now)}
    finished = [c for c in plan.cells if records[c.id] is not None and records[c.id]["status"] in FINISHED]
    failed = [c for c in plan.cells if records[c.id] is not None and records[c.id]["status"] == "failed"]
    todo = [c for c in plan.cells if c.id not in live and (records[c.id] is None or retry_failed and c in failed)]
    running = [c for c in plan.cells if c.id in live and c not in finished]
    skipped = []
    if finished:
        skipped.append(f"{len(finished)} of {len(plan.cells)} already finished, skipped")
    if failed and not retry_failed:
        skipped.append(f"{len(failed)} failed, skipped without --retry-failed")
    if running:
        skipped.append(f"{len(running)} being trained by other workers, which the sweep waits for")
    said = f" ({'; '.join(skipped)})" if skipped else ""
    per_step = {c.width: flops_per_token(c.model) * spec.train.batch_size * c.model.seq_len for c in todo}
    too_big = dev.type != "cuda" and bool(per_step) and max(per_step.values()) > CPU_TIMING_MAX_FLOPS
    data_s, data_what = _load_data(spec, dev, todo, timed_synthetic=not too_big)
    if not todo:
        if len(finished) == len(plan.cells):
            console.print(f"dry run: nothing to train: all {len(plan.cells)} cells are already finished", soft_wrap=True)
        else:
            console.print(f"dry run: nothing to train{said}", soft_wrap=True)
        return
    if too_big:
        total = sum(per_step[c.width] * c.steps for c in todo)
        console.print(f"dry run: {len(todo)} cells to train{said}, {total:.2g} training FLOPs in all; no time "
                      f"estimate on {dev}: one step at width {max(per_step, key=per_step.get)} is "
                      f"{max(per_step.values()):.1g} FLOPs, too slow to time here (run the dry run on the "
                      "machine that will train)", soft_wrap=True)
        return
    k = choose_k(spec, todo, dev, note, run_dir=store.root, save=False)
    stacks = make_stacks(todo, k)
    timing: dict = {}
    train_s = eval_s = 0.0
    n_val = -(-max(1, spec.train.eval_tokens // spec.model.seq_len) // spec.train.batch_size)  # eval batches
    evals = set()
    for stack in stacks:
        key = (stack[0].model, len(stack))
        if key not in timing:
            timing[key] = time_steps(stack[0].model, spec, dev, k=len(stack), forward=True)
        step_s, fwd_s = timing[key]
        n_eval = _evaluations(stack[0].steps, spec.train.eval_interval)
        evals.add(n_eval)
        train_s += step_s * stack[0].steps
        eval_s += fwd_s * n_val * n_eval
    n_eval = "/".join(map(str, sorted(evals)))
    total = train_s + eval_s + (data_s or 0.0)
    console.print(
        f"dry run: {len(todo)} cells to train in {len(stacks)} stacks of up to {max(k.values())} on {dev}{said}; "
        f"estimated time {fmt_duration(total)}: training {fmt_duration(train_s)} (from a quick measured step time), "
        f"evaluation {fmt_duration(eval_s)} ({n_eval} evaluations of {spec.train.eval_tokens:,} tokens per cell, at "
        f"the measured forward speed)"
        + (f", data preparation {fmt_duration(data_s)} ({data_what})" if data_s is not None
           else f"; data preparation not timed ({data_what})"),
        soft_wrap=True)


# ---- plot, transfer, report (src/lwscale/reports) -------------------------------------------
_RUN_DIR_HELP = "a run directory (default: the most recently modified run under ./runs)"


@app.command()
def plot(
    run_dir: Optional[Path] = typer.Argument(None, metavar="[RUN_DIR]", help=_RUN_DIR_HELP),
    proxy_width: Optional[int] = typer.Option(None, "--proxy-width", help="width whose optimum is marked (default: smallest)"),
    target_width: Optional[int] = typer.Option(None, "--target-width", help="target of the transfer figure (default: largest)"),
    pdf: bool = typer.Option(False, "--pdf", help="also write each figure as PDF"),
    relative: bool = typer.Option(True, "--relative/--absolute", help="colour the heatmaps by each cell's loss above "
                                  "its panel's best cell, so every panel's valley shows (default), or by the loss "
                                  "itself on one shared scale"),
) -> None:
    """Draw RUN_DIR's heatmaps, slices, transfer comparison and training curves into RUN_DIR/figures/."""
    from .reports.plots import plot_all
    from .reports.results import load_run

    run = load_run(run_dir)
    for p in plot_all(run, proxy_width, target_width, pdf, warn=warn, relative=relative):
        console.print(str(p))


@app.command()
def transfer(
    run_dir: Optional[Path] = typer.Argument(None, metavar="[RUN_DIR]", help=_RUN_DIR_HELP),
    proxy_width: Optional[int] = typer.Option(None, "--proxy-width", help="width the optimum is read from (default: "
                                              "smallest)"),
    target_width: Optional[int] = typer.Option(None, "--target-width", help="width to transfer it to (default: largest)"),
    proxy_steps: Optional[int] = typer.Option(None, "--proxy-steps", help="the proxy's training length, for a run of "
                                              "several (default: the base horizon, train.base_steps)"),
    target_steps: Optional[int] = typer.Option(None, "--target-steps", help="the target's training length: any "
                                               "number of steps, cells at it or not (default: the longest the run "
                                               "trained the target width)"),
    rule: Optional[list[str]] = typer.Option(None, "--rule", help="a rule of the run (repeatable; default: all)"),
    eta: Optional[float] = typer.Option(None, "--eta", help="use this base lr eta (base coordinates: the value at the "
                                        "base width) instead of the proxy's optimum; needs --wd"),
    wd: Optional[float] = typer.Option(None, "--wd", help="use this base weight decay lambda (base coordinates, "
                                       "PyTorch-coupled) instead of the proxy's optimum; needs --eta"),
    refined: bool = typer.Option(False, "--refined", help="refine the proxy optimum by a local quadratic fit in "
                                 "(log2 eta, log2 lambda) instead of the grid argmin"),
    train: bool = typer.Option(False, "--train", help="train the competitors at the target on fresh seeds (not the "
                               "grid's): each rule's transferred point, the best target cell of any rule and each "
                               "rule's own best; regrets and the ranking are then read on those seeds"),
    seeds: int = typer.Option(3, "--seeds", min=2, help="fresh seeds for --train (at least 2, for a standard error)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON on stdout"),
    emit: Optional[str] = typer.Option(None, "--emit", metavar="yaml", help="print only the target's AdamW "
                                       "parameter groups (per rule: lr, weight_decay and the parameters' name "
                                       "patterns) as YAML for a training script"),
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
    import json

    from .reports.results import load_run
    from .reports.transfer import competitors, to_frame
    from .reports.transfer import transfer as do_transfer
    from .reports.transfer_cli import print_transfer
    from .store import atomic_write_text

    if emit is not None and emit != "yaml":
        raise UserError(f"--emit takes yaml, got {emit!r}")
    as_json = as_json or emit is not None    # quiet: stdout holds the one document
    run = load_run(run_dir)
    proxy_width, target_width = proxy_width or run.widths[0], target_width or run.widths[-1]
    result = do_transfer(run, proxy_width, target_width, rule, eta, wd, refined, proxy_steps=proxy_steps,
                         target_steps=target_steps)
    if train:
        from .reports.train_target import fresh_seeds, train_points

        fresh = fresh_seeds(run.spec, seeds)
        train_points(run.spec, run.root, target_width, competitors(result), fresh,
                     log=note if not as_json else (lambda s: None),
                     progress=None if as_json else _RichProgress(run.spec), steps=result["target_steps"])
        run = load_run(run.root)
        result = do_transfer(run, proxy_width, target_width, rule, eta, wd, refined, eval_seeds=fresh,
                             proxy_steps=result["proxy_steps"], target_steps=result["target_steps"])
    atomic_write_text(run.root / "transfer.csv", to_frame(result).to_csv(index=False))
    from .store import _clean

    text = json.dumps(_clean(result), indent=1, default=float)   # NaN and inf become null
    atomic_write_text(run.root / "transfer.json", text)
    if emit:
        from .reports.emit import emit_yaml

        print(emit_yaml(run.spec, result), end="")
        return
    if as_json:
        print(text)
        return
    print_transfer(console, result)
    console.print(f"written: {run.root / 'transfer.csv'}, {run.root / 'transfer.json'}")


@app.command()
def report(
    run_dir: Optional[Path] = typer.Argument(None, metavar="[RUN_DIR]", help=_RUN_DIR_HELP),
    proxy_width: Optional[int] = typer.Option(None, "--proxy-width", help="transfer table's proxy (default: smallest width)"),
    target_width: Optional[int] = typer.Option(None, "--target-width", help="transfer table's target (default: largest)"),
) -> None:
    """Write RUN_DIR/report.md: the spec, loss tables, every figure, transfer and diagnostics.

    The diagnostics are run here (diagnose.md, diagnose.json and figures, as `lwscale diagnose` writes them), so
    the page is the same whether or not diagnose ran before."""
    from .reports.diagnose import write_diagnose
    from .reports.report import evaluation_seeds, write_report
    from .reports.results import load_run
    from .reports.transfer import transfer as do_transfer

    run = load_run(run_dir)
    try:
        write_diagnose(run)
    except UserError as exc:   # no cell has diagnostics: the page goes without (or with an older diagnose.md)
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


@app.command()
def status(
    run_dir: Optional[Path] = typer.Argument(None, metavar="[RUN_DIR]",
                                             help="a run directory; default: the latest under ./runs"),
    watch: bool = typer.Option(False, "--watch", help="refresh until every cell is finished (Ctrl-C to stop)"),
    interval: float = typer.Option(5.0, "--interval", min=0.1, help="seconds between refreshes with --watch"),
    as_json: bool = typer.Option(False, "--json", help="print the status as JSON on stdout: counts per width and "
                                 "status, running stacks, failures, the time left per width and its basis"),
) -> None:
    """Cells done, diverged, failed, running and pending per width, the running stacks, and the time left.

    The time left is priced per width from that width's measured seconds per step (a width not measured yet:
    scaled by FLOPs from the nearest one), and says which."""
    from .status import StatusReader, render, to_json
    from .store import find_run

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


def _add_data_commands() -> None:
    from .cli_data import app as data_app

    app.add_typer(data_app, name="data")


_add_data_commands()


def _plain_help() -> None:
    from .cli_help import plain_help

    plain_help(app)   # no <bool> after flags, plain usage lines (lwscale.cli_help)


_plain_help()


def main() -> None:
    try:
        app()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
