"""Claims: one winner per cell, stale claims taken over, and two real concurrent sweeps."""

import copy
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
from conftest import TINY_SPEC, write_spec

from lwscale.rundir.claims import claim, read_claims

SRC = str(Path(__file__).resolve().parents[2] / "src")
CELLS = ["c1", "c2", "c3", "c4"]


def _race(n: int, target) -> list:
    """Run target(i) in n threads released together by a barrier; return their results."""
    barrier, out = threading.Barrier(n), [None] * n

    def go(i):
        barrier.wait()
        out[i] = target(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_each_cell_is_won_by_exactly_one_claimant(tmp_path):
    # 8 claimants race for the same 4 cells, each in its own order
    won = _race(8, lambda i: claim(tmp_path, CELLS[i % 4 :] + CELLS[: i % 4], 600))
    claimed = [c for w in won if w is not None for c in w.cells]
    assert sorted(claimed) == CELLS  # every cell once, none twice
    infos = read_claims(tmp_path)
    assert set(infos) == set(CELLS)
    assert {i.host for i in infos.values()} == {socket.gethostname()} and {i.pid for i in infos.values()} == {
        os.getpid()
    }
    for w in won:
        if w is not None:
            assert all(w.owns(c) for c in w.cells)
            w.release()
    assert read_claims(tmp_path) == {}
    assert claim(tmp_path, CELLS, 600).cells == CELLS  # free again


def _fake_claim(run: Path, cell: str, host: str, pid: int, age_s: float = 0.0) -> Path:
    p = run / "claims" / f"{cell}.claim"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"host": host, "pid": pid, "started": time.time() - age_s, "cells": [cell]}))
    os.utime(p, (time.time() - age_s, time.time() - age_s))
    return p


def test_stale_claims_are_taken_over_and_live_ones_are_not(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process of this host that has exited
    _fake_claim(tmp_path, "c1", socket.gethostname(), dead_pid)  # dead pid on this host
    _fake_claim(tmp_path, "c2", "elsewhere", 12345, age_s=120)  # heartbeat 2 min old, timeout 1 min
    _fake_claim(tmp_path, "c3", "elsewhere", 12345, age_s=10)  # live on another host
    _fake_claim(tmp_path, "c4", socket.gethostname(), os.getppid())  # a live pid on this host
    c = claim(tmp_path, CELLS, timeout_s=60)
    assert c.cells == ["c1", "c2"]
    infos = read_claims(tmp_path)
    assert infos["c1"].pid == infos["c2"].pid == os.getpid()
    assert infos["c3"].host == "elsewhere" and infos["c4"].pid == os.getppid()
    assert not list((tmp_path / "claims").glob("*.takeover")) and not list((tmp_path / "claims").glob("*.tmp"))
    # the heartbeat touches every cell of the claim at once (one inode)
    for p in (tmp_path / "claims").glob("c[12].claim"):
        os.utime(p, (1000.0, 1000.0))
    c.beat()
    assert all(read_claims(tmp_path)[x].heartbeat > time.time() - 60 for x in ("c1", "c2"))
    c.release()
    assert set(read_claims(tmp_path)) == {"c3", "c4"}  # another worker's claims are never removed


def test_stale_claim_is_taken_over_by_one_worker_only(tmp_path):
    _fake_claim(tmp_path, "c1", "elsewhere", 1, age_s=3600)
    won = _race(6, lambda i: claim(tmp_path, ["c1"], timeout_s=60))
    assert sum(w is not None for w in won) == 1
    assert not list((tmp_path / "claims").glob("*.takeover"))


def _sweep(spec_path, out, env_extra):
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", **env_extra}
    return subprocess.Popen(
        [sys.executable, "-m", "lwscale.cli", "sweep", str(spec_path), "--out", str(out), "--cells-per-stack", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_sweeps_train_each_cell_once(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(rules=["sqrt-wd"], grid={"eta": [2**-7, 2**-6, 2**-5], "wd": [0.1, 1.0]})
    spec["model"]["widths"] = [32]
    spec["train"].update(seeds=[0], steps=10)
    path = write_spec(tmp_path / "s.yaml", spec)
    fa, fb = tmp_path / "a-started", tmp_path / "b-started"
    # a barrier: each worker signals at step 0 of a stack and waits at step 2 until the other has
    # signalled, so both certainly train at the same time; then they race for the remaining cells
    a = _sweep(path, tmp_path, {"LWSCALE_FAULT": f"touch:step=0:path={fa},pause:step=2:until={fb}"})
    b = _sweep(path, tmp_path, {"LWSCALE_FAULT": f"touch:step=0:path={fb},pause:step=2:until={fa}"})
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=300), b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, (err_a[-2000:], err_b[-2000:])
    trained = [int(re.search(r"trained (\d+) cells", o).group(1)) for o in (out_a, out_b)]
    assert sum(trained) == 6 and min(trained) >= 1, (out_a, out_b)  # each cell once, by one of them
    df = pd.read_csv(tmp_path / "tiny" / "results.csv")
    assert len(df) == 6 and (df["status"] == "done").all() and df["cell_id"].is_unique
    assert read_claims(tmp_path / "tiny") == {}
