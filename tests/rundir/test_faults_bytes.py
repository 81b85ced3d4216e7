"""Records and claims that are not UTF-8 (or not JSON): reported, never a crash, never a
cell silently left alone."""

import os
import time

from conftest import run_cli, write_spec
from runfixtures import records, small_spec

from lwscale.rundir.claims import claim, read_claim, read_claims


def test_a_record_of_garbage_bytes_is_reported_and_retrained(tmp_path):
    path = write_spec(tmp_path / "s.yaml", small_spec())
    assert run_cli(["sweep", path, "--out", tmp_path])[0] == 0
    run = tmp_path / "tiny"
    bad, good = sorted((run / "cells").glob("*/record.json"))
    bad.write_bytes(b"\xff\xfe\x00garbage \x80\x81")
    code, out, err = run_cli(["status", run])
    assert code == 0 and "Traceback" not in out + err, err
    assert "corruptrecord" in "".join(out.split())
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 0, err
    assert f"corrupt record {bad}" in out and "1 already finished, 1 to train" in out
    assert {r["status"] for r in records(run).values()} == {"done"}


def test_an_unreadable_claim_is_broken_taken_over_at_once_and_said_so(tmp_path):
    d = tmp_path / "claims"
    d.mkdir()
    (d / "c1.claim").write_bytes(b"\xff\xfe\x00\x80 not utf-8")
    (d / "c2.claim").write_text("garbage, not JSON")
    now = time.time()
    for p in d.iterdir():
        os.utime(p, (now, now))  # fresh: a timeout would keep them for 10 minutes
    infos = read_claims(tmp_path)
    assert set(infos) == {"c1", "c2"} and all(i.broken and i.stale(600) for i in infos.values())
    logs = []
    won = claim(tmp_path, ["c1", "c2"], 600, log=logs.append)
    assert won is not None and sorted(won.cells) == ["c1", "c2"]
    assert len(logs) == 2 and all("unreadable claim" in m and "taking it over" in m for m in logs), logs
    assert not any(i.broken for i in read_claims(tmp_path).values())
    won.release()
    assert read_claim(d / "c1.claim") is None


def test_status_and_sweep_survive_and_name_an_unreadable_claim(tmp_path):
    path = write_spec(tmp_path / "s.yaml", small_spec(etas=(2**-6,)))
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import load_spec

    (cell,) = make_plan(load_spec(path)).cells
    run = tmp_path / "tiny"
    (run / "claims").mkdir(parents=True)
    (run / "claims" / f"{cell.id}.claim").write_bytes(b"\x80\x81\x82")
    write_spec(run / "spec.yaml", small_spec(etas=(2**-6,)))
    code, out, err = run_cli(["status", run])
    assert code == 0 and "Traceback" not in out + err, err
    flat = " ".join(out.split())
    assert "unreadable claim" in flat and "│ 32 │ 0 │ 0 │ 0 │ 0 │ 1 │" in flat
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 0, err
    assert "unreadable claim" in out and "trained 1 cells" in out
    assert len(records(run)) == 1 and read_claims(run) == {}
