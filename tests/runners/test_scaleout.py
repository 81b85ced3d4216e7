"""Faults on the CPU: kill -9 and exact checkpoint resume, corrupt records, full disks,
the gpus runner's CPU fallback and its workers taking over a killed one's stack, the Slurm
script (with a fake sbatch; test_slurm_real.py runs a real cluster), and ``lwscale status``."""

import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import run_cli, write_spec
from runfixtures import leftovers, records, small_spec

from lwscale.rundir.claims import claim, read_claims
from lwscale.rundir.record import CellRecord

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_kill_9_mid_stack_resumes_from_checkpoint_exactly(tmp_path):
    spec = small_spec(widths=(32, 64), steps=12, checkpoint_minutes=0)  # checkpoint after every step
    spec["train"]["cells_per_stack"] = 2
    path = write_spec(tmp_path / "s.yaml", spec)
    run = tmp_path / "killed" / "tiny"
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "OMP_NUM_THREADS": "2",
        "LWSCALE_FAULT": f"kill:step=7:width=64:once={tmp_path / 'fired'}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "lwscale.cli", "sweep", str(path), "--out", str(run.parent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    before = records(run)
    assert {r["width"] for r in before.values()} == {32} and len(before) == 2  # the width-64 stack was killed
    assert len(list((run / "checkpoints").glob("*.pt"))) == 1 and len(read_claims(run)) == 2  # dead worker's
    stamps = {p: p.stat().st_mtime_ns for p in (run / "cells").glob("*/record.json")}

    code, out, err = run_cli(["sweep", path, "--out", run.parent])
    assert code == 0, err
    assert "resuming a stack of 2 from its checkpoint at step 7" in out and "trained 2 cells" in out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished cells were not retrained
    df = pd.read_csv(run / "results.csv")
    assert len(df) == 4 and (df["status"] == "done").all() and df["cell_id"].is_unique
    assert not df.duplicated(["rule", "width", "eta", "wd", "seed"]).any()
    assert not list((run / "checkpoints").glob("*")) and read_claims(run) == {} and not leftovers(run)

    # the same sweep, never interrupted: identical losses and curves, to the last bit (fp32, CPU)
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    clean = records(run_sweep(parse_spec(spec), out_dir=tmp_path / "clean").store.root)
    resumed = records(run)
    assert clean.keys() == resumed.keys()
    for cid, rec in resumed.items():
        for key in ("final_val_loss", "final_train_loss", "initial_loss", "curves", "diagnostics"):
            assert rec[key] == clean[cid][key], (cid, key)


def test_checkpoint_kept_only_when_the_spec_says_so(tmp_path):
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = small_spec(etas=(2**-6,), steps=6, checkpoint_minutes=0, keep_checkpoints=True)
    res = run_sweep(parse_spec(spec), out_dir=tmp_path)
    (ckpt,) = (res.store.root / "checkpoints").glob("*.pt")
    state = torch.load(ckpt, weights_only=False)
    assert state["cells"] == [c.id for c in res.plan.cells] and state["loop"]["step"] == 5  # the last before 6
    assert state["loop"]["val_curve"][0][0][0] == 0 and state["loop"]["train_curve"][0][0][0] == 5
    assert set(state["loop"]) >= {
        "train_curve",
        "val_curve",
        "initial",
        "window",
        "window_n",
        "last_finite",
        "last_train",
        "elapsed",
    }


def test_corrupt_or_half_written_record_is_reported_and_retrained(tmp_path):
    path = write_spec(tmp_path / "s.yaml", small_spec())
    assert run_cli(["sweep", path, "--out", tmp_path])[0] == 0
    run = tmp_path / "tiny"
    (bad, good) = sorted((run / "cells").glob("*/record.json"))
    text = bad.read_text()
    bad.write_text(text[: len(text) // 2])  # as an abrupt stop outside our atomic write would leave it
    (good.parent / ".record.json.x1y2.tmp").write_text(text[:100])  # a temp file a kill left behind
    good_stamp = good.stat().st_mtime_ns

    code, out, err = run_cli(["status", run])
    assert code == 0 and f"corruptrecord{bad}" in "".join(out.split())  # Rich may wrap the long path
    assert "for 1 cells with 1 worker" in " ".join(out.split())

    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 0, err
    assert f"corrupt record {bad}" in out and "1 already finished, 1 to train" in out
    assert json.loads(bad.read_text())["status"] == "done" and good.stat().st_mtime_ns == good_stamp
    code, out, err = run_cli(["status", run, "--watch"])  # returns once nothing is left to train
    assert code == 0 and "time left: none, every cell is finished" in out


def test_full_disk_or_no_permission_is_one_clear_line_and_nothing_half_written(tmp_path):
    path = write_spec(tmp_path / "s.yaml", small_spec(checkpoint_minutes=0))
    run = tmp_path / "tiny"
    code, out, err = run_cli(
        ["sweep", path, "--out", tmp_path], env={"LWSCALE_FAULT": "write:errno=ENOSPC:match=claims"}
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "No space left on device" in err and "claims" in err
    assert not leftovers(run) and read_claims(run) == {}

    code, out, err = run_cli(
        ["sweep", path, "--out", tmp_path], env={"LWSCALE_FAULT": "write:errno=ENOSPC:match=record.json"}
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert "cannot write" in err and "record.json: No space left on device" in err and "rerun to resume" in err
    assert records(run) == {} and not leftovers(run) and read_claims(run) == {}
    assert len(list((run / "checkpoints").glob("*.pt"))) == 1  # the trained stack can resume

    code, out, err = run_cli(
        ["sweep", path, "--out", tmp_path], env={"LWSCALE_FAULT": "write:errno=EACCES:match=checkpoints"}
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot write checkpoint" in err and "Permission denied" in err
    assert not leftovers(run) and read_claims(run) == {}
    # the first stack resumed from the checkpoint left by the ENOSPC run and finished (no save after its last
    # step); the second one stopped at its first save
    assert "resuming a stack of 1 from its checkpoint at step 5" in out and len(records(run)) == 1

    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 0 and "trained 1 cells" in out
    assert {r["status"] for r in records(run).values()} == {"done"} and len(records(run)) == 2
    assert not list((run / "checkpoints").glob("*.pt"))


def test_gpus_runner_without_gpu_falls_back_to_one_cpu_worker(tmp_path):
    path = write_spec(tmp_path / "s.yaml", small_spec())
    code, out, err = run_cli(["sweep", path, "--out", tmp_path, "--runner", "gpus"], env={"PYTHONPATH": SRC})
    assert code == 0, err
    assert "no GPU is visible, so the gpus runner falls back to one worker on the CPU" in out
    df = pd.read_csv(tmp_path / "tiny" / "results.csv")
    assert len(df) == 2 and (df["status"] == "done").all()
    logs = "".join(p.read_text() for p in (tmp_path / "tiny" / "submitit").glob("*_log.out"))
    assert "trained 2 cells" in logs  # the cells were trained by the submitit job, not this process
    # a rerun starts no worker: nothing is left to train
    code, out, err = run_cli(["sweep", path, "--out", tmp_path, "--runner", "gpus"], env={"PYTHONPATH": SRC})
    assert code == 0, err
    assert "all 2 cells already finished" in out and "worker" not in out


def test_gpus_runner_workers_share_cells_and_take_over_a_killed_workers_stack(tmp_path):
    # two workers on the CPU, claiming stacks as Slurm tasks do; one is killed mid-stack
    spec = small_spec(
        etas=(2**-8, 2**-7, 2**-6), steps=150, kind="gpus", workers=2, checkpoint_minutes=0, claim_timeout_minutes=0.1
    )
    path = write_spec(tmp_path / "s.yaml", spec)
    run = tmp_path / "tiny"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lwscale.cli", "sweep", str(path), "--out", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:  # both workers training their own stack, each checkpointed
            pids = {c.pid for c in read_claims(run).values()}
            if len(pids) == 2 and len(list((run / "checkpoints").glob("*.pt"))) == 2:
                break
            assert time.monotonic() < deadline and proc.poll() is None, "the two workers never trained at once"
            time.sleep(0.05)
        os.kill(max(pids), signal.SIGKILL)
        out = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    flat = " ".join(out.split())
    assert "gpus runner's 2 workers share the CPU" in flat and "crashed" in flat
    logs = "".join(p.read_text() for p in (run / "submitit").glob("*_log.out"))
    # the survivor took the dead worker's stale claim over and resumed its stack; every cell trained once
    assert re.search(r"resuming a stack of 1 from its checkpoint at step \d+", logs), logs
    assert sum(int(n) for n in re.findall(r"trained (\d+) cells", logs)) == 3, logs
    df = pd.read_csv(run / "results.csv")
    assert len(df) == 3 and (df["status"] == "done").all() and df["cell_id"].is_unique
    assert len(records(run)) == 3 and read_claims(run) == {} and not list((run / "checkpoints").glob("*.pt"))


def test_slurm_array_script_and_task(tmp_path, monkeypatch):
    import submitit

    spec = small_spec(
        widths=(32, 64),
        kind="slurm",
        slurm={
            "partition": "gpu",
            "time_minutes": 30,
            "gpus_per_task": 1,
            "cpus_per_task": 8,
            "mem_gb": 64,
            "account": "proj7",
            "qos": "high",
            "max_parallel": 1,
            "extra_sbatch": {"constraint": "h100"},
            "setup": ["module load cuda/12.4"],
        },
    )
    path = write_spec(tmp_path / "s.yaml", spec)
    spec_auto = copy.deepcopy(spec)
    spec_auto["train"]["cells_per_stack"] = "auto"
    code, out, err = run_cli(["sweep", write_spec(tmp_path / "a.yaml", spec_auto), "--out", tmp_path / "a"])
    assert code == 2 and "set train.cells_per_stack" in err and len(err.strip().splitlines()) == 1

    # no Slurm here: submitit writes the real sbatch script, and "sbatch" is replaced by an echo
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    monkeypatch.setattr(
        submitit.SlurmExecutor, "_make_submission_command", lambda self, p: ["echo", "Submitted batch job 4242"]
    )
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 0, err
    assert "submitted a Slurm array of 4 tasks" in out and "job 4242" in out
    run = tmp_path / "tiny"
    (script,) = (run / "slurm").rglob("*submission.sh")
    text = script.read_text()
    for line in [
        "#SBATCH --array=0-3%1",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=65536M",
        "#SBATCH --account=proj7",
        "#SBATCH --qos=high",
        "#SBATCH --constraint=h100",
        "#SBATCH --job-name=lwscale-tiny",
        "#SBATCH --ntasks-per-node=1",
        "module load cuda/12.4",
        "submitit.core._submit",
    ]:
        assert line in text, (line, text)
    assert not (run / "results.csv").exists() or pd.read_csv(run / "results.csv")["status"].eq("pending").all()

    # run one array task here, as a node would: it trains exactly its stack
    from submitit.core.utils import DelayedSubmission

    pickles = sorted((run / "slurm").rglob("*_submitted.pkl"))
    assert len(pickles) == 4
    task = DelayedSubmission.load(pickles[0])
    result = task.result()  # a RunResult, as every runner returns
    assert result.summary.done == 1 and not result.interrupted and result.table is None
    assert len(records(run)) == 1 and records(run).popitem()[0] == task.args[3][0]

    # through the library: submit_slurm returns a RunResult too, with the array's task ids
    from lwscale.runners.cluster import submit_slurm
    from lwscale.sweep.spec import parse_spec

    sub = submit_slurm(parse_spec(spec), tmp_path / "lib")
    assert sub.job_ids == [f"4242_{i}" for i in range(4)] and sub.table is None and len(sub.plan.cells) == 4


def test_status_counts_running_failed_pending_and_time_left(tmp_path):
    from lwscale.rundir.status import run_status

    path = write_spec(tmp_path / "s.yaml", small_spec(seeds=(0, 1)))
    # the first seed-1 stack raises at step 3: its cell is failed, the others finish
    code, out, err = run_cli(
        ["sweep", path, "--out", tmp_path], env={"LWSCALE_FAULT": f"raise:step=3:seed=1:once={tmp_path / 'fired'}"}
    )
    assert code == 1 and "--retry-failed" in out
    run = tmp_path / "tiny"
    recs = records(run)
    assert sorted(r["status"] for r in recs.values()) == ["done", "done", "done", "failed"]
    assert read_claims(run) == {}
    seed0 = sorted(cid for cid, r in recs.items() if r["seed"] == 0)
    done1 = next(r for r in recs.values() if r["seed"] == 1 and r["status"] == "done")
    for cid in seed0:
        (run / "cells" / cid / "record.json").unlink()
    held = claim(run, [seed0[0]], timeout_s=600)  # a live worker (this process) is training it
    try:
        st = run_status(run)
        assert st.counts == {32: {"done": 1, "diverged": 0, "failed": 1, "running": 1, "pending": 1}}
        # the pending cell costs the measured one's wall time; the running one that, less its time so far
        assert st.workers == 1 and st.seconds_left == pytest.approx(2 * done1["wall_s"], abs=1.0)
        assert st.seconds_left <= 2 * done1["wall_s"]
        code, out, err = run_cli(["status", run])
    finally:
        held.release()
    assert code == 0, err
    flat = " ".join(out.split())
    assert "│ 32 │ 1 │ 0 │ 1 │ 1 │ 1 │" in flat
    assert f"running: stack of 1 cell (width 32: {seed0[0]}) on {socket.gethostname()}:{os.getpid()}" in flat
    assert "failed: cell" in flat and "injected fault at step 3" in flat
    assert "time left: about" in flat and "for 2 cells with 1 worker" in flat


def test_status_shows_stacks_a_time_left_per_width_and_json(tmp_path):
    """One line per running stack; the time left priced per width from that width's measured
    seconds per step (a width not measured yet: scaled by FLOPs from the nearest measured one),
    saying so; and all of it as JSON."""
    from lwscale.model.config import flops_per_token
    from lwscale.rundir.store import Store
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import parse_spec

    store = Store.open(parse_spec(small_spec(widths=(16, 32), etas=(2**-7, 2**-6, 2**-5), steps=100)), tmp_path)
    cells = make_plan(store.read_spec()).cells
    w16, w32 = [c for c in cells if c.width == 16], [c for c in cells if c.width == 32]
    for c in w16[:2]:  # a stack of 2 took 3 s for 100 steps: 15 ms per step per cell
        store.write_record(
            CellRecord.from_json(
                {
                    "id": c.id,
                    "status": "done",
                    "width": 16,
                    "steps": 100,
                    "wall_s": 3.0,
                    "stack_size": 2,
                    "tokens": 100 * 4 * 32,
                    "flops_per_token": flops_per_token(c.model),
                }
            )
        )
    held = claim(store.root, [w32[0].id, w32[1].id], timeout_s=600)  # a live worker trains a stack of 2
    try:
        code, out, err = run_cli(["status", store.root, "--json"])
        assert code == 0, err
        data = json.loads(out)
        code, text, err = run_cli(["status", store.root])
    finally:
        held.release()
    assert data["counts"]["16"] == {"done": 2, "diverged": 0, "failed": 0, "running": 0, "pending": 1}
    assert data["counts"]["32"] == {"done": 0, "diverged": 0, "failed": 0, "running": 2, "pending": 1}
    assert data["total"]["running"] == 2 and data["workers"] == 1
    (stack,) = data["running"]
    assert stack["cells"] == [w32[0].id, w32[1].id] and stack["width"] == 32
    assert stack["worker"] == f"{socket.gethostname()}:{os.getpid()}"
    assert stack["started_ago_s"] >= 0 and stack["heartbeat_ago_s"] >= 0
    left = data["time_left"]
    assert left["by_width"]["16"]["cells"] == 1 and left["by_width"]["16"]["seconds"] == pytest.approx(1.5)
    assert "measured at width 16" in left["by_width"]["16"]["basis"]
    scale = flops_per_token(w32[0].model) / flops_per_token(w16[0].model)
    assert left["by_width"]["32"]["cells"] == 3
    assert left["by_width"]["32"]["seconds"] == pytest.approx(3 * 1.5 * scale, abs=0.5)  # less the stack's time so far
    assert "scaled by FLOPs from width 16" in left["by_width"]["32"]["basis"]
    assert left["seconds"] == pytest.approx(left["by_width"]["16"]["seconds"] + left["by_width"]["32"]["seconds"])
    flat = " ".join(text.split())
    assert flat.count("running: stack") == 1
    assert f"running: stack of 2 cells (width 32: {w32[0].id}, {w32[1].id}) on" in flat
    assert "width 16: 1 cell" in flat and "width 32: 3 cells" in flat and "scaled by FLOPs from width 16" in flat


def test_one_duration_format_for_status_and_dry_run():
    from lwscale.rundir.status import fmt_duration

    cases = {
        -5: "0 s",
        0: "0 s",
        42.4: "42 s",
        89.4: "89 s",
        89.6: "1.5 min",
        90: "1.5 min",
        754: "12.6 min",
        5390: "89.8 min",
        5399: "1.5 h",
        5400: "1.5 h",
        7200: "2.0 h",
        86400 * 3: "72.0 h",
        float("inf"): "unknown",
    }
    assert {s: fmt_duration(s) for s in cases} == cases


def test_status_watch_plans_once_and_sees_new_records(tmp_path, monkeypatch):
    import time

    import lwscale.sweep.plan as plan_module
    from lwscale.rundir.store import Store
    from lwscale.sweep.spec import parse_spec

    store = Store.open(parse_spec(small_spec()), tmp_path)  # two pending cells, nothing trained
    plans, sleeps = [], []
    make_plan = plan_module.make_plan
    monkeypatch.setattr(plan_module, "make_plan", lambda spec: plans.append(1) or make_plan(spec))
    cells = [c.id for c in make_plan(store.read_spec()).cells]

    real_sleep = time.sleep

    def sleep(s):  # between refreshes (others sleep too: subprocess waits), a worker finishes the next cell
        if s != 0.5:
            return real_sleep(s)
        sleeps.append(s)
        store.write_record(CellRecord.from_json({"id": cells[len(sleeps) - 1], "status": "done", "width": 32}))

    monkeypatch.setattr(time, "sleep", sleep)
    code, out, err = run_cli(["status", store.root, "--watch", "--interval", "0.5"])
    assert code == 0, err
    assert sleeps == [0.5, 0.5] and len(plans) == 1  # three refreshes of the records, one plan
    flat = " ".join(out.split())
    assert "│ 32 │ 2 │ 0 │ 0 │ 0 │ 0 │" in flat and "time left: none, every cell is finished" in flat


def test_status_replans_only_when_the_run_gets_a_new_spec(tmp_path, monkeypatch):
    """A run without plan.json (Store.open writes none) is planned, once per spec.yaml."""
    import os

    import lwscale.sweep.plan as plan_module
    from lwscale.rundir import status
    from lwscale.rundir.store import Store
    from lwscale.sweep.spec import parse_spec

    spec = small_spec()
    store = Store.open(parse_spec(spec), tmp_path)
    plans = []
    make_plan = plan_module.make_plan
    monkeypatch.setattr(plan_module, "make_plan", lambda s: plans.append(1) or make_plan(s))
    reader = status.StatusReader(store.root)
    reader.read()
    reader.read()
    assert len(plans) == 1
    wider = {**spec, "grid": {**spec["grid"], "wd": [0.1, 3.0]}}
    Store.open(parse_spec(wider), tmp_path)  # a second sweep widens the run's grid
    os.utime(store.root / "spec.yaml", ns=(1, 10**18))  # a distinct mtime however fast the test runs
    reader.read()
    assert len(plans) == 2 and len(reader.plan.cells) == 2 * len(make_plan(parse_spec(spec)).cells)


def test_open_run_lists_the_cells_left_for_every_runner(tmp_path):
    from lwscale.runners.local import open_run
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec(small_spec(etas=(2**-7, 2**-6, 2**-5)))
    plan, store, todo = open_run(spec, tmp_path)
    ids = [c.id for c in plan.cells]
    assert len(ids) == 3 and [c.id for c in todo] == ids and (store.root / "spec.yaml").exists()
    store.write_record(CellRecord.from_json({"id": ids[0], "status": "done", "width": 32}))
    store.write_record(CellRecord.from_json({"id": ids[1], "status": "failed", "width": 32}))
    store.record_path(ids[2]).parent.mkdir()
    store.record_path(ids[2]).write_text("{")  # half-written: retrained, with a warning
    logs = []
    assert [c.id for c in open_run(spec, tmp_path, log=logs.append).todo] == [ids[2]]
    assert len(logs) == 1 and logs[0].startswith(f"warning: corrupt record {store.record_path(ids[2])}")
    assert [c.id for c in open_run(spec, tmp_path, retry_failed=True).todo] == ids[1:]
    assert [c.id for c in open_run(spec, tmp_path, retry_failed=True, cells=ids[:2]).todo] == [ids[1]]


def test_out_of_memory_halves_the_stack_before_failing(tmp_path):
    spec = small_spec(seeds=(0, 1), steps=4)
    spec["train"]["cells_per_stack"] = 4
    path = write_spec(tmp_path / "s.yaml", spec)
    # the stack of 4 runs out of memory; its seed-0 half fits; the seed-1 half and its single cells do not
    env = {"LWSCALE_FAULT": "oom:step=1:k=4,oom:step=1:k=2:seed=1,oom:step=1:k=1:seed=1"}
    code, out, err = run_cli(["sweep", path, "--out", tmp_path], env=env)
    assert code == 1
    recs = sorted(records(tmp_path / "tiny").values(), key=lambda r: r["seed"])
    assert [(r["seed"], r["status"]) for r in recs] == [(0, "done"), (0, "done"), (1, "failed"), (1, "failed")]
    assert [r["stack_size"] for r in recs[:2]] == [2, 2]
    assert all(r["reason"] == "out of memory: injected out-of-memory at step 1" for r in recs[2:])


def test_status_reads_plan_json_and_loads_no_torch(tmp_path):
    """A run whose plan.json was planned from its spec.yaml is not planned again: lwscale status
    reads it and its records without importing torch (seconds of start-up), and says the same."""
    from lwscale.runners.local import open_run
    from lwscale.sweep.spec import parse_spec

    plan, store, _ = open_run(parse_spec(small_spec(seeds=(0, 1))), tmp_path)  # writes plan.json
    store.write_record(CellRecord.from_json({"id": plan.cells[0].id, "status": "done", "width": 32}))
    code = (
        "import sys; from lwscale.rundir.status import run_status; st = run_status(sys.argv[1]); "
        "print(st.counts, 'torch' in sys.modules, 'lwscale.sweep.plan' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(store.root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("}")[-1].split() == ["False", "True"], out.stdout  # the plan module, not planning
    assert "{32: {'done': 1, 'diverged': 0, 'failed': 0, 'running': 0, 'pending': 3}}" in out.stdout
