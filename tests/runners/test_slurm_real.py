"""The slurm runner on a real one-node Slurm cluster (tests/slurm_cluster.py): submit,
status, results equal to a local run, scancel and resubmit, the time-limit signal and
``scontrol requeue``, two arrays at once, a killed and a hung task, and bad cluster input.

Every test counts trainings (the ``trained N cells`` line each finished worker logs) and
records, so a lost or twice-trained cell fails it. Skipped, with the reason, where Slurm is
not installed or cannot start; the line ``slurm: ...`` in pytest's summary says which.
"""

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import slurm_cluster
from conftest import TINY_SPEC, run_cli, write_spec

from lwscale.rundir.claims import read_claims

pytestmark = pytest.mark.slurm

SRC = str(Path(__file__).resolve().parents[2] / "src")
ETAS = (2**-8, 2**-7, 2**-6, 2**-5)


class _Report:
    """A pytest plugin, registered by the fixture: one line in the terminal summary saying
    whether these tests ran on a real cluster, and how they fared."""

    def __init__(self):
        self.line, self.outcomes = "", {}

    def pytest_runtest_logreport(self, report):
        if "test_slurm_real.py" in report.nodeid and (report.when == "call" or report.outcome != "passed"):
            self.outcomes[report.outcome] = self.outcomes.get(report.outcome, 0) + 1

    def pytest_terminal_summary(self, terminalreporter):
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items()))
        terminalreporter.write_line(f"{self.line}; real-Slurm tests: {counts or 'none ran'}")


@pytest.fixture(scope="session")
def slurm(request):
    """A one-node Slurm cluster for the session; SLURM_CONF points the client commands at it."""
    report = _Report()
    request.config.pluginmanager.register(report, "lwscale-slurm-report")
    why = slurm_cluster.unavailable()
    if why:
        report.line = f"slurm: skipped: {why}"
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="lwslurm-"))  # short: munge's socket path must fit in 108 bytes
    try:
        cluster = slurm_cluster.start(root)
    except RuntimeError as exc:
        shutil.rmtree(root, ignore_errors=True)
        report.line = f"slurm: skipped: the cluster did not start: {str(exc).splitlines()[0]}"
        pytest.skip(report.line.removeprefix("slurm: skipped: "))
    old = {k: os.environ.get(k) for k in ("SLURM_CONF", "PYTHONPATH")}
    os.environ["SLURM_CONF"] = str(cluster.conf)
    # the tasks inherit this environment (sbatch exports it): they import this checkout's lwscale
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, old["PYTHONPATH"]) if p)
    pids = ", ".join(f"{n} pid {p.pid}" for n, p in cluster.procs.items())
    report.line = f"slurm: one-node cluster up on {cluster.node} ({pids})"
    try:
        yield cluster
    finally:
        cluster.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if report.outcomes.get("failed"):  # the daemons' logs, for whoever looks into it
            report.line += f"; its configuration and logs are kept in {root}"
        else:
            shutil.rmtree(root, ignore_errors=True)


# ---- helpers -----------------------------------------------------------------------------------
def slurm_spec(name: str, n_cells: int = 2, steps: int = 12, checkpoint_minutes=0, **slurm) -> dict:
    """``n_cells`` width-32 cells, one per stack (so one array task each), on the debug partition."""
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(name=name, rules=["sqrt-wd"], grid={"eta": list(ETAS[:n_cells]), "wd": [0.1]})
    spec["model"]["widths"] = [32]
    spec["train"].update(
        seeds=[0],
        steps=steps,
        cells_per_stack=1,
        eval_tokens=256,
        eval_interval=max(steps // 2, 1),
        log_interval=max(steps // 4, 1),
    )
    spec["runner"] = {
        "kind": "slurm",
        "checkpoint_minutes": checkpoint_minutes,
        "claim_timeout_minutes": 0.1,
        "slurm": {
            "partition": "debug",
            "time_minutes": 10,
            "gpus_per_task": 0,
            "cpus_per_task": 1,
            # one thread per one-CPU task
            "setup": ["export OMP_NUM_THREADS=1"],
            **slurm,
        },
    }
    return spec


def submit(path, out) -> tuple[str, str]:
    """``lwscale sweep PATH --runner slurm``: returns (job id, output)."""
    code, out, err = run_cli(["sweep", path, "--out", out, "--runner", "slurm"])
    assert code == 0, err
    m = re.search(r"submitted a Slurm array of \d+ tasks .*: job (\d+);", " ".join(out.split()))
    assert m, out
    return m[1], out


def records(run: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in (run / "cells").glob("*/record.json")}


def stamps(run: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in (run / "cells").glob("*/record.json")}


def task_logs(run: Path) -> dict[str, str]:
    """Each array task's log, by job id (a requeued task appends to its own)."""
    return {p.parent.name: p.read_text() for p in (run / "slurm").glob("*/*_log.out")}


def trained(run: Path) -> int:
    """Cells trained to the end, over every task's log: each finished worker logs its count."""
    return sum(int(n) for text in task_logs(run).values() for n in re.findall(r"trained (\d+) cells", text))


def assert_complete(run: Path, n: int) -> None:
    """Every cell trained exactly once, recorded done once, in results.csv once; nothing left over."""
    assert trained(run) == n, task_logs(run)
    recs = records(run)
    assert len(recs) == n and {r["status"] for r in recs.values()} == {"done"}
    df = pd.read_csv(run / "results.csv")
    assert len(df) == n and (df["status"] == "done").all() and df["cell_id"].is_unique
    assert read_claims(run) == {} and not list((run / "checkpoints").glob("*.pt"))


def wait_for(ok, timeout: float = 120, what: str = "", poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = ok()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(poll)


def start_now(cluster, task: str) -> None:
    """A requeued job waits about 2 minutes (Slurm's BeginTime) before it may start again: skip that."""
    wait_for(lambda: cluster.jobs().get(task) == "PENDING", 60, f"{task} to be requeued")
    cluster.run("scontrol", "update", f"JobId={task}", "StartTime=now")


def local_records(spec: dict, out: Path) -> dict:
    """The records of ``spec`` run locally, in this process, on one thread as the tasks do (two
    threads on a machine busier than its cores can take 30 times longer)."""
    import torch

    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    local = copy.deepcopy(spec)
    local["runner"] = {"kind": "local"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return records(run_sweep(parse_spec(local), out_dir=out).store.root)
    finally:
        torch.set_num_threads(threads)


def same_training(a: dict, b: dict) -> None:
    """Bit-identical losses and curves, cell for cell."""
    assert a.keys() == b.keys()
    for cid in a:
        for key in ("status", "final_val_loss", "final_train_loss", "initial_loss", "curves"):
            assert a[cid][key] == b[cid][key], (cid, key)


# ---- tests -------------------------------------------------------------------------------------
def test_array_submits_returns_shows_running_and_equals_a_local_run(slurm, tmp_path):
    spec = slurm_spec("e2e", n_cells=3, steps=40)
    path = write_spec(tmp_path / "s.yaml", spec)
    job, out = submit(path, tmp_path)
    run = tmp_path / "e2e"
    assert "submitted a Slurm array of 3 tasks (one per stack, 3 cells)" in " ".join(out.split())
    assert {t for t in slurm.jobs() if t.startswith(job + "_")}  # it returned with the array in the queue
    assert slurm.job_field(f"{job}_0", "Partition") == "debug"

    def running():
        code, text, err = run_cli(["status", run])
        assert code == 0, err
        return "running: stack" in text and " ".join(text.split())

    shown = wait_for(running, 120, "lwscale status to show a running task", poll=0.1)
    assert re.search(r"running: stack of \d cells? \(width 32: \w+[^)]*\) on [\w.-]+:\d+", shown)
    slurm.wait_idle()
    assert_complete(run, 3)
    code, text, _ = run_cli(["status", run])
    assert "time left: none, every cell is finished" in text
    # the same spec, run locally: the same cells, losses and curves to the last bit
    same_training(records(run), local_records(spec, tmp_path / "local"))
    local = pd.read_csv(tmp_path / "local" / "e2e" / "results.csv")
    timing = ["tokens_per_s", "wall_s", "tflops", "mfu"]
    pd.testing.assert_frame_equal(pd.read_csv(run / "results.csv").drop(columns=timing), local.drop(columns=timing))


def test_scancel_then_the_same_sweep_resubmits_only_unfinished_cells(slurm, tmp_path):
    spec = slurm_spec("cancel", n_cells=3, steps=100, max_parallel=1)  # one task at a time
    path = write_spec(tmp_path / "s.yaml", spec)
    job, _ = submit(path, tmp_path)
    run = tmp_path / "cancel"
    # mid-way: one cell finished, the next stack checkpointed, one task still queued
    wait_for(lambda: records(run) and list((run / "checkpoints").glob("*.pt")), 180, "a record and a checkpoint")
    slurm.run("scancel", job)
    slurm.wait_idle()
    done = stamps(run)
    assert len(done) == 1 and read_claims(run) == {}  # the cancelled task released its claim
    (ckpt,) = (run / "checkpoints").glob("*.pt")
    assert "caught SIGTERM" in "".join(task_logs(run).values())

    job2, out = submit(path, tmp_path)
    assert "submitted a Slurm array of 2 tasks" in " ".join(out.split())
    slurm.wait_idle()
    assert stamps(run).items() >= done.items()  # finished cells were not retrained
    logs2 = "".join(t for j, t in task_logs(run).items() if j.startswith(job2))
    assert re.search(r"resuming a stack of 1 from its checkpoint at step \d+", logs2)
    assert_complete(run, 3)


def test_time_limit_signal_and_scontrol_requeue_resume_from_the_checkpoint(slurm, tmp_path):
    # no periodic checkpoints: the stop signal alone makes the stack save
    spec = slurm_spec("requeue", n_cells=2, steps=200, checkpoint_minutes=None)
    path = write_spec(tmp_path / "s.yaml", spec)
    job, _ = submit(path, tmp_path)
    run = tmp_path / "requeue"
    wait_for(lambda: len(read_claims(run)) == 2, 180, "both tasks to train", poll=0.05)
    # the signal Slurm sends a task 90 s before its time limit (submitit's --signal=USR2@90)
    slurm.run("scancel", "--signal=USR2", f"{job}_0")
    slurm.run("scontrol", "requeue", f"{job}_1")  # as an admin or a preemption would
    for task in (f"{job}_0", f"{job}_1"):
        start_now(slurm, task)
    slurm.wait_idle()
    logs = task_logs(run)
    for task, sig in ((f"{job}_0", "SIGUSR2"), (f"{job}_1", "SIGTERM")):
        text = logs[task]
        assert f"caught {sig}" in text, text
        saved = re.search(r"saved the stack's checkpoint at step (\d+) before stopping", text)
        assert saved and f"resuming a stack of 1 from its checkpoint at step {saved[1]}" in text, text
        assert slurm.job_field(task, "Restarts") == "1"
    assert "Requeued job" in logs[f"{job}_0"]  # by submitit's handler, through WorkerJob.checkpoint
    assert_complete(run, 2)
    same_training(records(run), local_records(spec, tmp_path / "local"))


def test_two_arrays_of_one_spec_train_each_cell_once(slurm, tmp_path):
    path = write_spec(tmp_path / "s.yaml", slurm_spec("twice", n_cells=2, steps=30))
    cmd = [sys.executable, "-m", "lwscale.cli", "sweep", str(path), "--out", str(tmp_path)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert all("submitted a Slurm array of 2 tasks" in " ".join(o.split()) for o in outs), outs
    slurm.wait_idle()
    run = tmp_path / "twice"
    assert len(task_logs(run)) == 4
    assert_complete(run, 2)


def test_killed_and_hung_tasks_claims_go_stale_and_are_taken_over(slurm, tmp_path):
    spec = slurm_spec("dead", n_cells=2, steps=200)
    path = write_spec(tmp_path / "s.yaml", spec)
    job, _ = submit(path, tmp_path)
    run = tmp_path / "dead"

    def both_checkpointed():
        claims = read_claims(run)
        return len(claims) == 2 and len(list((run / "checkpoints").glob("*.pt"))) == 2 and claims

    claims = wait_for(both_checkpointed, 180, "both stacks to checkpoint", poll=0.05)
    (killed, hung) = sorted({c.pid for c in claims.values()})
    os.kill(killed, signal.SIGKILL)  # a node that dies: nothing runs on
    os.kill(hung, signal.SIGSTOP)  # a node that hangs: its pid lives on, its heartbeat stops
    try:
        # the dead one is stale at once (its pid is gone), the hung one once the heartbeat is 6 s old
        wait_for(lambda: all(c.stale(6) for c in read_claims(run).values()), 60, "both claims to go stale")
        code, text, _ = run_cli(["status", run])
        assert " ".join(text.split()).count("stale claim: cell") == 2
        job2, out = submit(path, tmp_path)
        assert "submitted a Slurm array of 2 tasks" in " ".join(out.split())
        # the new tasks take both claims over; then the hung task's node goes for good
        wait_for(
            lambda: all(c.pid not in (killed, hung) for c in read_claims(run).values()) or len(records(run)) == 2,
            180,
            "the claims to be taken over",
        )
    finally:
        os.kill(hung, signal.SIGKILL)
    slurm.wait_idle()
    logs2 = "".join(t for j, t in task_logs(run).items() if j.startswith(job2))
    assert len(re.findall(r"resuming a stack of 1 from its checkpoint at step \d+", logs2)) == 2, logs2
    assert_complete(run, 2)
    same_training(records(run), local_records(spec, tmp_path / "local"))


@pytest.mark.parametrize("case", ["partition", "account", "no-sbatch"])
def test_bad_cluster_input_is_one_line_and_submits_nothing(slurm, tmp_path, case):
    slurm_keys = {
        "partition": {"partition": "no-such-partition"},
        "account": {"partition": "billed", "account": "no-such-account"},
    }.get(case, {})
    path = write_spec(tmp_path / "s.yaml", slurm_spec("bad", **slurm_keys))
    env = {}
    if case == "no-sbatch":  # srun is there (submitit looks for it), sbatch is not
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "srun").symlink_to(slurm_cluster.which("srun"))
        env["PATH"] = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent)])
    queued = slurm.jobs()
    code, out, err = run_cli(["sweep", path, "--out", tmp_path, "--runner", "slurm"], env=env)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "nothing was submitted" in err and "Traceback" not in out + err
    assert {
        "partition": "Invalid partition name specified (runner.slurm: partition no-such-partition",
        "account": "Invalid account or account/partition combination specified",
        "no-sbatch": "sbatch is not on PATH",
    }[case] in err
    run = tmp_path / "bad"
    assert not (run / "slurm").exists() and records(run) == {} and slurm.jobs() == queued
