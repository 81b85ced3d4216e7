"""Every runner returns one type, RunResult (runners/result.py): the run directory, its plan,
the table it left, what it trained and whether it was stopped. Slurm's submit_slurm and the
worker job are checked in test_scaleout.py, transfer --train's train_points in test_transfer.py."""

from pathlib import Path

import pandas as pd
from runfixtures import small_spec

from lwscale.runners.cluster import run_gpus
from lwscale.runners.local import run_sweep
from lwscale.runners.result import RunResult, RunSummary
from lwscale.sweep.spec import parse_spec

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_this_process_and_the_gpus_runner_return_the_same_result(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", SRC)  # the gpus runner's worker: a submitit job in another process
    spec = parse_spec(small_spec())
    here = run_sweep(spec, out_dir=tmp_path / "here")
    there = run_gpus(spec, out_dir=tmp_path / "there")  # no GPU: one worker on the CPU
    for res in (here, there):
        assert isinstance(res, RunResult) and not res.interrupted and res.job_ids == []
        assert (res.summary.done, res.summary.failed, len(res.plan.cells)) == (2, 0, 2)
        assert res.table.equals(
            pd.read_csv(res.store.root / "results.csv", keep_default_na=True).astype(res.table.dtypes)
        )
    cols = ["rule", "width", "eta", "wd", "seed", "cell_id", "status", "final_val_loss"]
    assert here.table[cols].equals(there.table[cols])  # the same cells, trained alike
    again = run_gpus(spec, out_dir=tmp_path / "there")  # nothing left: no worker, the same type
    assert isinstance(again, RunResult) and again.summary == RunSummary() and len(again.table) == 2


def test_summaries_add():
    a, b = RunSummary(1, 2, 0, []), RunSummary(0, 1, 1, ["RuntimeError: x"])
    a.add(b)
    assert a == RunSummary(1, 3, 1, ["RuntimeError: x"])


def test_a_worker_stopped_by_slurm_counts_the_cells_it_finished(tmp_path, monkeypatch):
    """SIGTERM (scancel, a time limit) reaches a worker job in its second stack: the stack saves
    its checkpoint and stops, and the job's RunResult is interrupted and still counts the first
    stack's cell, whose record is on disk."""
    import os
    import signal
    import threading
    import time

    from lwscale.runners.cluster import worker_job

    flag = tmp_path / "second-stack-started"
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")  # a Slurm task: stop signals are caught
    monkeypatch.setenv("LWSCALE_FAULT", f"touch:step=2:seed=1:path={flag}")
    spec = parse_spec(small_spec(etas=(2**-6,), seeds=(0, 1), steps=400))

    def scancel() -> None:
        while not flag.exists():
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=scancel, daemon=True).start()
    res = worker_job(spec.model_dump(mode="json"), str(tmp_path), False)
    assert isinstance(res, RunResult) and res.interrupted and res.table is None
    assert (res.summary.done, res.summary.failed) == (1, 0)
    done = [c for c in res.plan.cells if res.store.read_record(c.id) is not None]
    assert [c.seed for c in done] == [0] and list((res.store.root / "checkpoints").glob("*.pt"))
