"""The ``gpus`` and ``slurm`` runners, through submitit.

``gpus``: one worker process per visible GPU on this box (submitit's LocalExecutor, each
job seeing one GPU through CUDA_VISIBLE_DEVICES). Every worker runs the same claim -> train
-> release loop (runners/worker.py) over the whole run, so they share the cells without a
coordinator. Without a GPU it falls back to one CPU worker, with a note.

``slurm``: a Slurm job array (submitit's SlurmExecutor), one task per stack, with the
``runner.slurm`` settings. Each task claims its stack like any worker, so a requeued or
duplicated task never trains a finished or running cell. ``lwscale sweep`` returns once the
array is submitted; follow it with ``lwscale status RUN_DIR``.

All runners write the same run directory, which may sit on a shared filesystem.
"""
from __future__ import annotations

import sys
from typing import Callable

from ..errors import UserError
from ..spec import Spec, parse_spec, with_overrides
from .local import RunSummary, SweepResult, open_run

LOCAL_TIMEOUT_MIN = 60 * 24 * 30  # submitit's local jobs are killed after their timeout: a month


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise UserError("the gpus and slurm runners need submitit: pip install 'lwscale[slurm]'") from None
    return submitit


def worker_job(spec_data: dict, out_dir: str | None, retry_failed: bool, cells: list[str] | None = None) -> dict:
    """One worker: the body of a submitit job (local or Slurm). Returns its summary."""
    from .local import run_sweep

    spec = parse_spec(spec_data, "worker")
    result = run_sweep(spec, out_dir, retry_failed=retry_failed, update_spec=False, cells=cells,
                       log=lambda s: print(s, flush=True))
    s = result.summary
    return {"done": s.done, "diverged": s.diverged, "failed": s.failed, "failures": s.failures,
            "interrupted": result.interrupted}


# ---- gpus --------------------------------------------------------------------------------------
def run_gpus(spec: Spec, out_dir=None, retry_failed: bool = False,
             log: Callable[[str], None] = lambda s: None) -> SweepResult:
    import torch

    submitit = _import_submitit()
    plan, store, todo = open_run(spec, out_dir, retry_failed, log)
    if not todo:
        log(f"run directory {store.root}: all {len(plan.cells)} cells already finished")
        return SweepResult(store, plan, store.rebuild_table(plan), RunSummary(), False)
    n_gpu = torch.cuda.device_count()
    if n_gpu == 0:
        log("note: no GPU is visible, so the gpus runner falls back to one worker on the CPU")
        workers, device = 1, "cpu"
    else:
        workers, device = min(spec.runner.workers or n_gpu, n_gpu, len(todo)), "cuda"
    folder = store.root / "submitit"
    executor = submitit.LocalExecutor(folder=folder)
    spec_data = with_overrides(spec, "gpus runner", train={"device": device}).model_dump(mode="json")
    jobs = []
    for i in range(workers):
        gpu = {"visible_gpus": [i], "gpus_per_node": 1} if n_gpu else {"gpus_per_node": 0}
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, **gpu)
        jobs.append(executor.submit(worker_job, spec_data, str(store.root.parent), retry_failed))
    log(f"{workers} worker{'s' if workers > 1 else ''} started on {device}; their logs are in {folder}")
    summary, interrupted = RunSummary(), False
    try:
        for job in jobs:
            try:
                res = job.result()
            except Exception as exc:  # a worker that crashed: its cells stay claimed until stale
                msg = str(exc).strip().splitlines()
                summary.failures.append(f"worker {job.job_id} crashed: {msg[-1] if msg else exc}")
                log(f"warning: worker {job.job_id} crashed ({msg[-1] if msg else exc}); its log is in {folder}; "
                    "its cells stay pending: run the same command again to resume")
                continue
            for k in ("done", "diverged", "failed"):
                setattr(summary, k, getattr(summary, k) + res[k])
            summary.failures += res["failures"]
            interrupted |= res["interrupted"]
    except KeyboardInterrupt:
        for job in jobs:
            job.cancel(check=False)
        interrupted = True
    return SweepResult(store, plan, store.rebuild_table(plan), summary, interrupted)


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
    }
    if s.max_parallel:
        params["array_parallelism"] = s.max_parallel
    return {k: v for k, v in params.items() if v is not None}


def submit_slurm(spec: Spec, out_dir=None, retry_failed: bool = False,
                 log: Callable[[str], None] = lambda s: None) -> list[str]:
    """Submit one array task per pending stack; return the job ids."""
    import torch

    from .local import make_stacks

    submitit = _import_submitit()
    _, store, todo = open_run(spec, out_dir, retry_failed, log)
    if not todo:
        log("nothing to submit: every cell is finished")
        return []
    k = spec.train.cells_per_stack
    if k == "auto":
        if not torch.cuda.is_available():
            raise UserError("runner slurm: train.cells_per_stack is 'auto', but K cannot be measured on this "
                            "machine (no GPU); set train.cells_per_stack or pass --cells-per-stack")
        from ..train import resolve_device
        from .stacking import choose_k

        k = choose_k(spec, todo, resolve_device("cuda"), log)
    stacks = make_stacks(todo, k)
    try:
        executor = submitit.SlurmExecutor(folder=store.root / "slurm" / "%j", python=sys.executable)
    except RuntimeError as exc:
        raise UserError(f"runner slurm: {exc} (submit from a Slurm login node)") from None
    executor.update_parameters(**slurm_parameters(spec))
    n = len(stacks)
    # each task trains exactly its stack: K = its size, the device the node has
    specs = [with_overrides(spec, "slurm runner", train={"device": "auto", "cells_per_stack": len(s)})
             .model_dump(mode="json") for s in stacks]
    root = str(store.root.parent)
    try:
        jobs = executor.map_array(worker_job, specs, [root] * n, [retry_failed] * n,
                                  [[c.id for c in s] for s in stacks])
    except Exception as exc:  # sbatch refused: show its one line
        msg = str(exc).strip().splitlines()
        raise UserError(f"runner slurm: submission failed: {msg[-1] if msg else exc}") from None
    log(f"submitted a Slurm array of {n} tasks (one per stack, {len(todo)} cells): job {jobs[0].job_id.split('_')[0]}; "
        f"logs in {store.root / 'slurm'}; follow with: lwscale status {store.root}")
    return [j.job_id for j in jobs]
