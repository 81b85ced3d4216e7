"""The ``gpus`` and ``slurm`` runners, through submitit.

``gpus``: one worker process per visible GPU on this box (submitit's LocalExecutor, each
job seeing one GPU through CUDA_VISIBLE_DEVICES). Every worker runs the same claim -> train
-> release loop (runners/worker.py) over the whole run, so they share the cells without a
coordinator; a worker that runs out of cells waits for those the others hold and takes over
a dead worker's stack. Without a GPU it runs ``runner.workers`` CPU workers (one by default),
with a note.

``slurm``: a Slurm job array (submitit's SlurmExecutor), one task per stack, with the
``runner.slurm`` settings. Each task claims its stack like any worker, so a requeued or
duplicated task never trains a finished or running cell. A task told to stop (time limit,
preemption, scancel, requeue) saves its stack at the next step and, before a time limit,
requeues itself through submitit; the stack resumes from that checkpoint. ``lwscale sweep`` returns once the
array is submitted; follow it with ``lwscale status RUN_DIR``.

All runners write the same run directory, which may sit on a shared filesystem.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import sys
from typing import Callable

from lwscale.core.errors import UserError
from lwscale.core.log import quiet
from lwscale.rundir.claims import read_claims
from lwscale.runners.local import open_run, run_sweep
from lwscale.runners.result import RunResult
from lwscale.runners.stack import make_stacks
from lwscale.runners.stacking import choose_k
from lwscale.runners.worker import Preempted, stop_on_signals, wait_for_claimed
from lwscale.sweep.spec import Spec, parse_spec, with_overrides
from lwscale.training.checkpoint import saved_stacks
from lwscale.training.loop import resolve_device

SIGNAL_DELAY_S = 90  # submitit's --signal=USR2@90: the warning a Slurm task gets before its time limit
LOCAL_TIMEOUT_MIN = 60 * 24 * 30  # submitit's local jobs are killed after their timeout: a month


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise UserError("the gpus and slurm runners need submitit: pip install 'lwscale[slurm]'") from None
    return submitit


class WorkerJob:
    """One worker: the body of a submitit job (local or Slurm), called with the spec's data,
    the run's parent directory, --retry-failed and the cells to train (None: all). Returns
    a RunResult: what it trained, and whether it was stopped (its table is on disk).

    It trains the cells it can claim, then waits for those other workers hold and trains any
    whose claim goes stale (a dead worker's), so a job ends only when each of its cells has
    a record, whoever wrote it. Under Slurm, SIGUSR2 (sent SIGNAL_DELAY_S before the
    time limit, or at preemption) and SIGTERM (scancel, ``scontrol requeue``, the limit
    itself) stop it at the next step boundary with the stack's checkpoint saved and its
    claim released; after SIGUSR2 submitit's handler then requeues the task (this callable
    has ``checkpoint``, which is what submitit requeues a timed-out job for), and the
    requeued task resumes the stack from that checkpoint."""

    def __call__(
        self, spec_data: dict, out_dir: str | None, retry_failed: bool, cells: list[str] | None = None
    ) -> RunResult:
        spec = parse_spec(spec_data, "worker")
        log = lambda s: print(s, flush=True)  # noqa: E731
        with stop_on_signals(enabled=os.environ.get("SUBMITIT_EXECUTOR") == "slurm") as previous:
            plan, store, todo = open_run(spec, out_dir, retry_failed, update_spec=False, cells=cells)
            result = RunResult(store, plan)
            try:
                self._train(spec, out_dir, retry_failed, todo, result, log)
            except Preempted as stop:
                result.interrupted = True
                log(
                    f"stopped by {signal.Signals(stop.signum).name}: finished cells are kept, the stack in "
                    "flight resumes from its checkpoint"
                )
                requeue = previous.get(signal.SIGUSR2)
                if stop.signum == signal.SIGUSR2 and callable(requeue):
                    requeue(signal.SIGUSR2, None)  # submitit's: checkpoint(), scontrol requeue, exit
            return result

    def checkpoint(self, *args, **kwargs):
        """What submitit requeues after a timeout or preemption: the same call; the cells
        already finished are skipped, the stack in flight resumes from its checkpoint."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)

    @staticmethod
    def _train(spec: Spec, out_dir, retry_failed: bool, todo, result: RunResult, log) -> None:
        """Train ``todo`` (cells of ``result``'s run), waiting for the ones other workers hold,
        into ``result``'s summary; then settle results.csv."""
        store = result.store
        before = {c.id: store.record_stamp(c.id) for c in todo}
        left = list(before)
        while True:
            one = run_sweep(
                spec, out_dir, retry_failed=retry_failed, update_spec=False, cells=left, log=log, summary=result.summary
            )
            result.interrupted = one.interrupted
            left = [cid for cid in left if store.record_stamp(cid) == before[cid]]  # no record written since
            if result.interrupted or not left:
                break
            wait_for_claimed(store, left, spec.runner.claim_timeout_minutes * 60, log)
        if before:
            _settle_table(store, result.plan)


worker_job = WorkerJob()


def _settle_table(store, plan) -> None:
    """Rebuild results.csv until no record appeared while it was rebuilt. Workers that
    finish together (array tasks on two nodes) each rebuild it after their own record, and
    the last to write it may have read the records before another's landed; whoever writes
    last sees any record newer than its reading here and rebuilds again."""

    def state() -> dict:
        return {p.parent.name: p.stat().st_mtime_ns for p in store.cells_dir.glob("*/record.json")}

    while True:
        seen = state()
        store.rebuild_table(plan)
        if state() == seen:
            return


# ---- gpus --------------------------------------------------------------------------------------
def run_gpus(spec: Spec, out_dir=None, retry_failed: bool = False, log: Callable[[str], None] = quiet) -> RunResult:
    import torch

    submitit = _import_submitit()
    plan, store, todo = open_run(spec, out_dir, retry_failed, log)
    if not todo:
        log(f"run directory {store.root}: all {len(plan.cells)} cells already finished")
        return RunResult(store, plan, store.rebuild_table(plan))
    n_gpu = torch.cuda.device_count()
    if n_gpu == 0:
        workers, device = min(spec.runner.workers or 1, len(todo)), "cpu"
        if spec.runner.workers is None:
            log("note: no GPU is visible, so the gpus runner falls back to one worker on the CPU")
        else:
            log(f"note: no GPU is visible, so the gpus runner's {workers} workers share the CPU")
    else:
        workers, device = min(spec.runner.workers or n_gpu, n_gpu, len(todo)), "cuda"
    folder = store.root / "submitit"
    executor = submitit.LocalExecutor(folder=folder)
    spec_data = with_overrides(spec, "gpus runner", train={"device": device}).model_dump(mode="json")
    jobs = []
    for i in range(workers):
        gpu = {"visible_gpus": [i], "gpus_per_node": 1} if n_gpu else {"gpus_per_node": 0}
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, **gpu)
        jobs.append(executor.submit(worker_job, spec_data, str(store.root.parent.resolve()), retry_failed))
    log(f"{workers} worker{'s' if workers > 1 else ''} started on {device}; their logs are in {folder}")
    result = RunResult(store, plan)
    try:
        for job in jobs:
            try:
                res = job.result()
            except Exception as exc:  # a worker that crashed: its cells stay claimed until stale
                msg = str(exc).strip().splitlines()
                result.summary.failures.append(f"worker {job.job_id} crashed: {msg[-1] if msg else exc}")
                log(
                    f"warning: worker {job.job_id} crashed ({msg[-1] if msg else exc}); its log is in {folder}; "
                    "its cells stay pending: run the same command again to resume"
                )
                continue
            result.summary.add(res.summary)
            result.interrupted |= res.interrupted
    except KeyboardInterrupt:
        for job in jobs:
            job.cancel(check=False)
        result.interrupted = True
    result.table = store.rebuild_table(plan)
    return result


# ---- slurm -------------------------------------------------------------------------------------
def slurm_parameters(spec: Spec) -> dict:
    """submitit SlurmExecutor parameters from the spec's runner.slurm block."""
    s = spec.runner.slurm
    params = {
        "job_name": f"lwscale-{spec.name}",
        "time": s.time_minutes,
        "nodes": 1,
        "ntasks_per_node": 1,
        "partition": s.partition,
        "gpus_per_node": s.gpus_per_task or None,
        "cpus_per_task": s.cpus_per_task,
        "mem": None if s.mem_gb is None else f"{int(s.mem_gb * 1024)}M",
        "account": s.account,
        "qos": s.qos,
        "setup": list(s.setup) or None,
        "additional_parameters": {k.replace("_", "-"): v for k, v in s.extra_sbatch.items()} or None,
        "signal_delay_s": SIGNAL_DELAY_S,
    }
    if s.max_parallel:
        params["array_parallelism"] = s.max_parallel
    return {k: v for k, v in params.items() if v is not None}


def submit_slurm(spec: Spec, out_dir=None, retry_failed: bool = False, log: Callable[[str], None] = quiet) -> RunResult:
    """Submit one array task per pending stack; the result holds their job ids (and no table:
    nothing is trained yet; follow with ``lwscale status``). Cells that a live
    worker holds (an earlier array's running task) are left to it. A refused submission
    (sbatch's error, or no sbatch) is one UserError line and leaves no submission files."""
    import torch

    submitit = _import_submitit()
    plan, store, todo = open_run(spec, out_dir, retry_failed, log)
    claims, timeout_s = read_claims(store.root), spec.runner.claim_timeout_minutes * 60
    held = [c for c in todo if c.id in claims and not claims[c.id].stale(timeout_s)]
    if held:
        log(
            f"{len(held)} unfinished cells are being trained now (live claims, see lwscale status): not submitted again"
        )
        todo = [c for c in todo if c not in held]
    if not todo:
        log("nothing to submit: every cell is finished" if not held else "nothing else to submit")
        return RunResult(store, plan)
    k = spec.train.cells_per_stack
    if k == "auto":
        if not torch.cuda.is_available():
            raise UserError(
                "runner slurm: train.cells_per_stack is 'auto', but K cannot be measured on this "
                "machine (no GPU); set train.cells_per_stack or pass --cells-per-stack"
            )
        k = choose_k(spec, todo, resolve_device("cuda"), log, run_dir=store.root)
    stacks = make_stacks(todo, k, saved_stacks(store.root))
    minutes = spec.runner.slurm.time_minutes
    if minutes * 60 < 2 * SIGNAL_DELAY_S:
        log(
            f"warning: runner.slurm.time_minutes is {minutes}: Slurm signals each task {SIGNAL_DELAY_S} s before "
            "its time limit, and the task then saves its stack and requeues (at most 3 times), so it trains for "
            f"at most {max(0, minutes * 60 - SIGNAL_DELAY_S)} s a time; ask for more time"
        )
    folder = store.root / "slurm"
    try:
        executor = submitit.SlurmExecutor(folder=folder / "%j", python=sys.executable)
    except RuntimeError as exc:  # no srun: not a Slurm machine
        raise UserError(f"runner slurm: {exc} (submit from a Slurm login node)") from None
    executor.update_parameters(**slurm_parameters(spec))
    n = len(stacks)
    # each task trains exactly its stack: K = its size, the device the node has
    specs = [
        with_overrides(spec, "slurm runner", train={"device": "auto", "cells_per_stack": len(s)}).model_dump(
            mode="json"
        )
        for s in stacks
    ]
    root = str(store.root.parent.resolve())  # the tasks' working directory may differ from ours
    before = set(folder.iterdir()) if folder.is_dir() else set()
    try:
        # submitit copies sbatch's stderr to ours before raising with it: keep it for the one line below
        with contextlib.redirect_stderr(io.StringIO()):
            jobs = executor.map_array(
                worker_job, specs, [root] * n, [retry_failed] * n, [[c.id for c in s] for s in stacks]
            )
    except Exception as exc:  # sbatch refused, or is missing: nothing was submitted
        _remove_new(folder, before)
        if isinstance(exc, FileNotFoundError):
            raise UserError(
                "runner slurm: sbatch is not on PATH (submit from a Slurm login node); nothing was submitted"
            ) from None
        lines = str(exc).strip().splitlines()
        why = (lines[-1] if lines else str(exc)).removeprefix("sbatch: error: ")
        s = spec.runner.slurm
        asked = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("partition", s.partition),
                ("account", s.account),
                ("qos", s.qos),
                ("time_minutes", s.time_minutes),
            )
            if v
        )
        raise UserError(
            f"runner slurm: sbatch refused the job array: {why} (runner.slurm: {asked}); nothing was submitted"
        ) from None
    log(
        f"submitted a Slurm array of {n} tasks (one per stack, {len(todo)} cells): job {jobs[0].job_id.split('_')[0]}; "
        f"logs in {folder}; follow with: lwscale status {store.root}"
    )
    return RunResult(store, plan, job_ids=[j.job_id for j in jobs])


def _remove_new(folder, before: set) -> None:
    """Remove what a failed submission wrote into ``folder`` (submitit's pickles and script)."""
    if not folder.is_dir():
        return
    for p in set(folder.iterdir()) - before:
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
    if not before:
        with contextlib.suppress(OSError):
            folder.rmdir()
