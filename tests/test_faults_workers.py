"""Workers sharing a run: a cell another worker finished while this one planned is never
trained again, and a worker that leaves cells to others waits for them before it says
every cell is finished."""
import json

from lwscale.claims import read_claims
from test_scaleout import small_spec


def test_a_cell_finished_by_another_worker_while_k_is_timed_is_not_retrained(tmp_path, monkeypatch):
    """A worker lists the pending cells, then spends seconds timing K: another worker that
    finishes one of them meanwhile must not see it trained a second time."""
    from lwscale.runners import stacking
    from lwscale.runners.local import run_sweep
    from lwscale.spec import parse_spec

    spec = parse_spec(small_spec(etas=(2**-7, 2**-6, 2**-5)))
    stolen = {}
    real_choose = stacking.choose_k

    def choose_k_while_another_worker_finishes(spec_, cells, device, log=lambda s: None):
        cell = cells[0]                                  # the other worker trained it meanwhile
        store = __import__("lwscale.store", fromlist=["Store"]).Store(tmp_path / "tiny")
        store.write_record({"id": cell.id, "status": "done", "width": cell.width, "by": "the other worker"})
        stolen["id"] = cell.id
        return real_choose(spec_, cells, device, log)

    monkeypatch.setattr(stacking, "choose_k", choose_k_while_another_worker_finishes)
    logs = []
    res = run_sweep(spec, out_dir=tmp_path, log=logs.append)
    rec = json.loads(res.store.record_path(stolen["id"]).read_text())
    assert rec.get("by") == "the other worker", "the finished cell was trained again"
    assert res.summary.done == 2 and any("trained 2 cells" in m for m in logs), logs
    assert read_claims(res.store.root) == {}
