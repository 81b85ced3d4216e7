"""Workers sharing a run: a cell another worker finished while this one planned is never
trained again, and a worker that leaves cells to others waits for them before it says
every cell is finished."""

import json

from runfixtures import small_spec

from lwscale.rundir.claims import read_claims
from lwscale.rundir.record import CellRecord


def test_a_cell_finished_by_another_worker_while_k_is_timed_is_not_retrained(tmp_path, monkeypatch):
    """A worker lists the pending cells, then spends seconds timing K: another worker that
    finishes one of them meanwhile must not see it trained a second time."""
    from lwscale.rundir.store import Store
    from lwscale.runners import local
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec(small_spec(etas=(2**-7, 2**-6, 2**-5)))
    stolen = {}
    real_choose = local.choose_k

    def choose_k_while_another_worker_finishes(spec_, cells, device, log=lambda s: None, **kw):
        cell = cells[0]  # the other worker trained it meanwhile
        store = Store(tmp_path / "tiny")
        store.write_record(
            CellRecord.from_json({"id": cell.id, "status": "done", "width": cell.width, "by": "the other worker"})
        )
        stolen["id"] = cell.id
        return real_choose(spec_, cells, device, log, **kw)

    monkeypatch.setattr(local, "choose_k", choose_k_while_another_worker_finishes)
    logs = []
    res = run_sweep(spec, out_dir=tmp_path, log=logs.append)
    rec = json.loads(res.store.record_path(stolen["id"]).read_text())
    assert rec.get("by") == "the other worker", "the finished cell was trained again"
    assert res.summary.done == 2 and any("trained 2 cells" in m for m in logs), logs
    assert read_claims(res.store.root) == {}


def _other_worker_holds(run, cell_id):
    """A live claim of another worker (this process, so its pid is alive) on one cell."""
    from lwscale.rundir.claims import claim

    held = claim(run, [cell_id], timeout_s=600)
    assert held is not None
    return held


def test_a_worker_waits_for_cells_another_worker_is_training(tmp_path, monkeypatch):
    """Exit 0 means every cell is finished: a worker whose last cells are held by another live
    worker waits for their records instead of returning with them pending."""
    import threading

    from lwscale.rundir.store import Store
    from lwscale.runners import worker
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import parse_spec

    monkeypatch.setattr(worker, "POLL_S", 0.01, raising=False)
    spec = parse_spec(small_spec(etas=(2**-7, 2**-5)))
    Store.open(spec, tmp_path)
    theirs = make_plan(spec).cells[1]
    held = _other_worker_holds(tmp_path / "tiny", theirs.id)

    def the_other_worker_finishes():
        Store(tmp_path / "tiny").write_record(
            CellRecord.from_json({"id": theirs.id, "status": "done", "width": 32, "by": "other"})
        )
        held.release()

    logs = []

    def log(msg):
        logs.append(msg)
        if msg.startswith("waiting for"):
            threading.Thread(target=the_other_worker_finishes).start()

    res = run_sweep(spec, out_dir=tmp_path, log=log)
    assert any(m.startswith("waiting for 1 cell") for m in logs), logs
    assert set(res.table["status"]) == {"done"}, res.table[["cell_id", "status"]]
    assert res.store.read_record(theirs.id).extra["by"] == "other" and res.summary.done == 1
    assert read_claims(res.store.root) == {}


def test_a_waiting_worker_takes_over_a_cell_whose_worker_died(tmp_path, monkeypatch):
    import os
    import time

    from lwscale.rundir.store import Store
    from lwscale.runners import worker
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import parse_spec

    monkeypatch.setattr(worker, "POLL_S", 0.01, raising=False)
    spec = parse_spec(small_spec(etas=(2**-7, 2**-5)))
    Store.open(spec, tmp_path)
    theirs = make_plan(spec).cells[1]
    held = _other_worker_holds(tmp_path / "tiny", theirs.id)
    logs = []

    def log(msg):
        logs.append(msg)
        if msg.startswith("waiting for"):  # the other worker dies: its heartbeat stops
            held._stop.set()
            p = tmp_path / "tiny" / "claims" / f"{theirs.id}.claim"
            old = time.time() - 3600
            os.utime(p, (old, old))

    res = run_sweep(spec, out_dir=tmp_path, log=log)
    assert set(res.table["status"]) == {"done"} and res.summary.done == 2, logs
    assert any("trained 2 cells" in m for m in logs), logs
