"""results.csv is rebuilt once per trained stack, and not once more at the end when the last
stack's rebuild already holds every record; a run with nothing to train still writes it."""

import pandas as pd
from runfixtures import small_spec

from lwscale.rundir.store import Store


def test_table_is_rebuilt_once_per_stack_and_not_again_at_the_end(tmp_path, monkeypatch):
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    calls = []
    rebuild = Store.rebuild_table
    monkeypatch.setattr(Store, "rebuild_table", lambda self, plan: calls.append(1) or rebuild(self, plan))
    spec = parse_spec(small_spec(steps=3))  # two cells, one per stack
    res = run_sweep(spec, out_dir=tmp_path)
    assert len(calls) == 2 and res.summary.done == 2
    on_disk = pd.read_csv(res.store.root / "results.csv")
    assert (on_disk["status"] == "done").all() and len(on_disk) == 2
    assert res.table["cell_id"].tolist() == on_disk["cell_id"].tolist()

    (res.store.root / "results.csv").unlink()
    again = run_sweep(spec, out_dir=tmp_path)  # nothing to train: the table is still written
    assert len(calls) == 3 and again.summary.done == 0
    assert pd.read_csv(res.store.root / "results.csv").equals(on_disk)
