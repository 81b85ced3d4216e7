"""What a sweep would do, without training: ``lwscale sweep --dry-run``'s estimate.

The cells a sweep of the spec into its run directory would train (finished records skipped,
failed ones unless retried, those live workers hold left to them; a changed spec refused as
the sweep refuses it), the stacks it would cut them into, and their time: training from a
quick measured step time, evaluation (eval_tokens at every eval point) at the measured forward
speed, and data preparation. The CLI prints it (lwscale/cli/dry_run.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from lwscale.core.log import quiet
from lwscale.data.load import load_dataset
from lwscale.rundir.claims import read_claims
from lwscale.rundir.store import Store
from lwscale.runners.stack import make_stacks
from lwscale.runners.stacking import choose_k
from lwscale.sweep.plan import Cell, Plan, model_flops_per_token
from lwscale.sweep.spec import Spec
from lwscale.training.loop import time_steps

# above this many FLOPs per training step of one cell, a CPU dry run does not time steps:
# one step would take minutes (e.g. configs/gpu-scale.yaml's width 2048 is ~2e13 FLOPs)
CPU_TIMING_MAX_FLOPS = 2e11


@dataclass
class Estimate:
    device: torch.device
    cells: int  # the plan's
    todo: list[Cell]  # to train
    finished: int = 0
    failed: int = 0  # skipped unless retried
    running: int = 0  # held by live workers, which the sweep waits for
    retry_failed: bool = False
    data_s: float | None = None  # data loading and preparation, measured; None: not timed
    data_what: str = ""  # what data_s covers
    flops_per_step: dict[int, float] = field(default_factory=dict)  # one cell's, per width
    timed: bool = True  # False: one step is too large to time on this device (CPU_TIMING_MAX_FLOPS)
    k: dict[int, int] = field(default_factory=dict)  # cells per stack, per width
    stacks: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    evaluations: list[int] = field(default_factory=list)  # per cell, over the stacks' lengths

    @property
    def skipped(self) -> list[str]:
        """The cells the sweep would leave, said in words."""
        out = []
        if self.finished:
            out.append(f"{self.finished} of {self.cells} already finished, skipped")
        if self.failed and not self.retry_failed:
            out.append(f"{self.failed} failed, skipped without --retry-failed")
        if self.running:
            out.append(f"{self.running} being trained by other workers, which the sweep waits for")
        return out

    @property
    def total_flops(self) -> float:
        return sum(self.flops_per_step[c.width] * c.steps for c in self.todo)

    @property
    def total_s(self) -> float:
        return self.train_s + self.eval_s + (self.data_s or 0.0)


def evaluations(steps: int, interval: int) -> int:
    """Evaluations a cell of ``steps`` runs: at step 0, every ``interval`` steps, and at the end."""
    return 1 + (steps - 1) // interval + 1


def time_data(spec: Spec, device, todo: list[Cell], timed_synthetic: bool, log=quiet) -> tuple[float | None, str]:
    """Load the spec's data as the sweep will (cached; memory-mapped), so that data that cannot
    feed this spec (a validation set larger than the corpus, ids outside the vocabulary) is
    one line from the dry run too, not an error after it; and time it. Returns (seconds or
    None, a note on what they cover). The synthetic source's training stream is priced by generating
    its first missing chunk (kept in the cache for the sweep) times the chunks still missing;
    with ``timed_synthetic`` False (a spec too large to time here) it is not generated at all."""
    if spec.data.source == "synthetic" and not timed_synthetic:
        return None, "the synthetic teacher is too large to run here"
    ms = spec.model
    t0 = time.perf_counter()
    dataset = load_dataset(
        spec.data,
        ms.seq_len,
        spec.train.batch_size,
        spec.train.eval_tokens,
        device if spec.data.source == "synthetic" else torch.device("cpu"),
        max_width=max(ms.widths),
        depth=ms.depth,
        head_dim=ms.head_dim,
        log=log,
    )
    seconds = time.perf_counter() - t0
    if spec.data.source != "synthetic" or not todo:
        return seconds, "measured; cached for the sweep"
    need = max(c.steps for c in todo) * spec.train.batch_size
    missing = []
    for seed in sorted({c.seed for c in todo}):
        stream = dataset.stream(seed)
        n_chunks = -(-need // stream.cfg.chunk_seqs)
        missing += [(stream, i) for i in range(n_chunks) if not stream.cached(i)]
    if missing:
        t0 = time.perf_counter()
        stream, i = missing[0]
        stream.chunk(i)
        seconds += (time.perf_counter() - t0) * len(missing)
    return seconds, (
        f"measured: the teacher's validation set, and the {len(missing)} missing training chunk(s) "
        "at the time of the first"
        if missing
        else "measured; cached for the sweep"
    )


def estimate(
    spec: Spec,
    plan: Plan,
    device: torch.device,
    out=None,
    retry_failed: bool = False,
    log: Callable[[str], None] = quiet,
    warn: Callable[[str], None] = quiet,
) -> Estimate:
    """The plan's cost on ``device`` without training (module docstring). ``warn`` gets the run
    directory's warnings (corrupt records), ``log`` the notes of loading data and choosing K."""
    store = Store(Store.root_for(spec, out))
    store.check_spec(spec)  # the sweep's refusal of a changed spec, before any timing
    records = {c.id: store.read_record(c.id) for c in plan.cells}
    for w in store.warnings:
        warn(w)
    timeout_s, now = spec.runner.claim_timeout_minutes * 60, time.time()
    live = {cid for cid, cl in read_claims(store.root).items() if not cl.stale(timeout_s, now)}
    finished = [c for c in plan.cells if records[c.id] is not None and records[c.id].finished]
    failed = [c for c in plan.cells if records[c.id] is not None and records[c.id].status == "failed"]
    todo = [c for c in plan.cells if c.id not in live and (records[c.id] is None or retry_failed and c in failed)]
    running = [c for c in plan.cells if c.id in live and c not in finished]
    est = Estimate(device, len(plan.cells), todo, len(finished), len(failed), len(running), retry_failed)
    est.flops_per_step = {
        c.width: model_flops_per_token(spec, c.model) * spec.train.batch_size * c.model.seq_len for c in todo
    }
    too_big = (
        device.type != "cuda" and bool(est.flops_per_step) and max(est.flops_per_step.values()) > CPU_TIMING_MAX_FLOPS
    )
    est.timed = not too_big
    est.data_s, est.data_what = time_data(spec, device, todo, timed_synthetic=not too_big, log=log)
    if not todo or too_big:
        return est
    est.k = choose_k(spec, todo, device, log, run_dir=store.root, save=False)
    stacks = make_stacks(todo, est.k)
    est.stacks = len(stacks)
    timing: dict = {}
    n_val = -(-max(1, spec.train.eval_tokens // spec.model.seq_len) // spec.train.batch_size)  # eval batches
    evals = set()
    for stack in stacks:
        key = (stack[0].model, len(stack))
        if key not in timing:
            timing[key] = time_steps(stack[0].model, spec, device, k=len(stack), forward=True)
        step_s, fwd_s = timing[key]
        n_eval = evaluations(stack[0].steps, spec.train.eval_interval)
        evals.add(n_eval)
        est.train_s += step_s * stack[0].steps
        est.eval_s += fwd_s * n_val * n_eval
    est.evaluations = sorted(evals)
    return est
