"""Paths a spec or a data manifest names never reach outside the directory they belong in."""

import pytest
from conftest import run_cli, write_spec
from runfixtures import small_spec


@pytest.mark.parametrize("name", ["..", "."])
def test_a_run_name_of_dots_is_refused_and_writes_nothing_outside(tmp_path, monkeypatch, name):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    spec = small_spec()
    spec["name"] = name
    mine = write_spec(work / "spec.yaml", {"the user's": "own spec"})
    before = mine.read_text()
    spec_path = write_spec(work / "s.yaml", spec)
    code, out, err = run_cli(["sweep", spec_path])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "name" in err, (code, err)
    assert mine.read_text() == before and not (work / "results.csv").exists() and not (work / "cells").exists()


def test_store_refuses_a_run_directory_outside_its_out_dir(tmp_path):
    from lwscale.core.errors import UserError
    from lwscale.rundir.store import Store
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec(small_spec()).model_copy(update={"name": ".."})  # past the spec's own check
    with pytest.raises(UserError, match="outside"):
        Store.open(spec, tmp_path / "runs")
    assert not (tmp_path / "spec.yaml").exists()


@pytest.mark.parametrize("name", ["../../../etc/hostname", "/etc/hostname", "sub/../../x.bin", ".."])
def test_a_manifest_naming_a_token_file_outside_its_directory_is_refused(tmp_path, name):
    import json

    from conftest import TINY_SPEC

    d = tmp_path / "data"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"tokens_file": name, "dtype": "uint16", "vocab_size": 256}))
    spec = {**TINY_SPEC, "data": {"source": "tokens", "paths": [str(d)]}}
    code, out, err = run_cli(["sweep", write_spec(tmp_path / "s.yaml", spec), "--out", tmp_path / "runs"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in out + err, (code, err)
    assert "tokens_file" in err and "outside" in err
