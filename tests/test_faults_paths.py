"""Paths a spec or a data manifest names never reach outside the directory they belong in."""
import pytest

from conftest import run_cli, write_spec
from test_scaleout import small_spec


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
    from lwscale.errors import UserError
    from lwscale.spec import parse_spec
    from lwscale.store import Store

    spec = parse_spec(small_spec()).model_copy(update={"name": ".."})   # past the spec's own check
    with pytest.raises(UserError, match="outside"):
        Store.open(spec, tmp_path / "runs")
    assert not (tmp_path / "spec.yaml").exists()
