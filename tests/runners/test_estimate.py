"""The dry run's estimate (runners/estimate.py), through the library: what a sweep would train,
and what it would cost, with the synthetic teacher's training chunks priced and not forgotten."""

import copy

import torch
from conftest import TINY_SPEC

from lwscale.runners.estimate import estimate, evaluations
from lwscale.runners.local import run_sweep
from lwscale.sweep.plan import make_plan
from lwscale.sweep.spec import parse_spec


def test_evaluations_count_step_zero_every_interval_and_the_end():
    assert [evaluations(steps, 10) for steps in (1, 10, 11, 20, 25)] == [2, 2, 3, 3, 4]


def test_a_synthetic_sweep_is_priced_with_its_missing_chunks_then_counted_as_finished(tmp_path, monkeypatch):
    monkeypatch.setenv("LWSCALE_CACHE", str(tmp_path / "cache"))
    raw = copy.deepcopy(TINY_SPEC)
    raw["model"]["widths"] = [32]
    raw["rules"], raw["train"]["seeds"] = ["sqrt-wd"], [0]
    raw["data"] = {"source": "synthetic", "vocab_size": 64, "teacher": {"width": 32, "depth": 1}}
    spec = parse_spec(raw)
    plan, cpu, notes = make_plan(spec), torch.device("cpu"), []
    est = estimate(spec, plan, cpu, tmp_path / "runs", log=notes.append)
    assert len(est.todo) == est.cells == len(plan.cells) and est.timed and est.stacks >= 1
    assert "missing training chunk(s)" in est.data_what and est.data_s > 0
    assert est.train_s > 0 and est.eval_s > 0 and est.total_s >= est.train_s + est.eval_s
    assert est.evaluations == [evaluations(spec.train.steps, spec.train.eval_interval)]
    assert not (tmp_path / "runs").exists()  # an estimate writes no run directory

    run_sweep(spec, out_dir=tmp_path / "runs")
    again = estimate(spec, plan, cpu, tmp_path / "runs")
    assert again.todo == [] and again.finished == again.cells
    assert again.skipped == [f"{again.cells} of {again.cells} already finished, skipped"]
    for cell in plan.cells:  # records gone, the teacher's chunks kept: nothing left to generate
        (tmp_path / "runs" / spec.name / "cells" / cell.id / "record.json").unlink()
    third = estimate(spec, plan, cpu, tmp_path / "runs")
    assert len(third.todo) == third.cells and third.data_what == "measured; cached for the sweep"
