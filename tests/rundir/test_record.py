"""The cell record: one class writes and reads it, in the order and with the keys of docs/records.md."""

import json
import re
from pathlib import Path

from runfixtures import small_spec

from lwscale.rundir.record import IDENTITY, PROVENANCE, CellRecord
from lwscale.rundir.store import Store
from lwscale.runners.local import run_sweep
from lwscale.sweep.spec import parse_spec
from lwscale.training.result import RECORD_FIELDS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "records.md"


def documented_keys() -> set[str]:
    """The keys in the first column of docs/records.md's record.json table (``curves.train``: ``curves``)."""
    text = DOCS.read_text()
    table = text.split("## `cells/<id>/record.json`", 1)[1].split("\n\n", 1)[0]
    keys = set()
    for line in table.splitlines()[2:]:
        first = line.split("|")[1]
        keys |= {k.split(".")[0] for k in re.findall(r"`([a-z_.]+)`", first)}
    return keys


def test_a_sweeps_records_have_the_documented_keys_in_order_and_read_back_byte_for_byte(tmp_path, monkeypatch):
    """Done, diverged (a NaN in the loss of step index 3: frozen at optimizer step 4) and failed cells of one sweep: each record.json holds exactly the keys
    docs/records.md lists, in CellRecord's order (a failed cell: no result's keys), and
    reading a record and writing it again gives the same bytes."""
    monkeypatch.setenv("LWSCALE_FAULT", "nan:step=3:cell=0:width=32:seed=0,raise:step=2:width=16")
    res = run_sweep(parse_spec(small_spec(widths=(16, 32), seeds=(0, 1))), out_dir=tmp_path)
    recs = res.store.records()
    by_status = {r.status: r for r in recs.values()}
    assert set(by_status) == {"done", "diverged", "failed"}, {c: r.status for c, r in recs.items()}

    trained = list(PROVENANCE + IDENTITY + RECORD_FIELDS)
    for rec in recs.values():
        raw = res.store.record_path(rec.id).read_bytes()
        keys = list(json.loads(raw))
        assert keys == (trained if rec.status != "failed" else list(PROVENANCE + IDENTITY)), rec.status
        res.store.write_record(rec)  # provenance kept, nothing added or lost
        assert res.store.record_path(rec.id).read_bytes() == raw
    assert set(trained) == documented_keys()

    diverged, failed = by_status["diverged"], by_status["failed"]
    assert diverged.result.diverged_step == 4 and diverged.result.final_val_loss is None
    assert "at step 4" in diverged.reason and diverged.diagnostics
    assert failed.result is None and failed.reason.startswith("RuntimeError") and failed.diagnostics == {}
    assert by_status["done"].result.final_val_loss > 0 and by_status["done"].finished


def test_keys_this_version_does_not_know_are_kept_and_missing_ones_read_as_none(tmp_path):
    store = Store(tmp_path)
    store.write_record(CellRecord.from_json({"id": "c", "status": "done", "width": 8, "from_the_future": [1, 2]}))
    rec = store.read_record("c")
    assert rec.extra == {"from_the_future": [1, 2]} and rec.result.final_val_loss is None and rec.steps is None
    assert rec.lwscale_version and rec.finished_at  # stamped by the store when written
    store.add_labels("c", [{"rule": "sqrt-wd", "width": 8, "eta": 0.1, "wd": 1.0, "seed": 0}])
    again = store.read_record("c")
    assert again.extra == rec.extra and again.finished_at == rec.finished_at and len(again.labels) == 1
    # the file's own keys in its order, the labels after them; none of the keys it lacked added empty
    keys = list(json.loads(store.record_path("c").read_text()))
    assert keys == [*PROVENANCE, "id", "status", "width", "from_the_future", "labels"]


def test_a_rewrite_keeps_the_provenance_the_file_held(tmp_path, monkeypatch):
    """A record written where lwscale was not a git checkout holds git_commit null; adding a
    label from a checkout keeps it null (the commit that trained it is not the one relabelling)."""
    import lwscale.rundir.store as store_module

    store = Store(tmp_path)
    monkeypatch.setattr(store_module, "git_commit", lambda: None)
    store.write_record(CellRecord.from_json({"id": "c", "status": "done", "width": 8}))
    before = json.loads(store.record_path("c").read_text())
    monkeypatch.setattr(store_module, "git_commit", lambda: "abc1234")
    store.add_labels("c", [{"rule": "sqrt-wd", "width": 8, "eta": 0.1, "wd": 1.0, "seed": 0}])
    after = json.loads(store.record_path("c").read_text())
    assert before["git_commit"] is None and after["git_commit"] is None
    assert {k: after[k] for k in before} == before and after["labels"][0]["rule"] == "sqrt-wd"
