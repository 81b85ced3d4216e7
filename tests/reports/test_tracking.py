"""Experiment trackers written from the records after a sweep (lwscale.reports.tracking): TensorBoard
and Weights & Biases, offline. Each test skips, saying why, where its package is missing."""

import copy
import importlib.util
import json

import pytest
from conftest import TINY_SPEC, run_cli, write_spec

HAS = {name: importlib.util.find_spec(name) is not None for name in ("tensorboard", "wandb")}


def spec_with(logging: dict) -> dict:
    spec = copy.deepcopy(TINY_SPEC)  # one width-32 cell, 6 steps
    spec.update(rules=["sqrt-wd"], grid={"eta": [2**-6], "wd": [0.1]}, logging=logging)
    spec["model"]["widths"] = [32]
    spec["train"].update(seeds=[0], steps=6, eval_interval=3, eval_tokens=256, log_interval=2)
    return spec


def record(run) -> dict:
    (path,) = (run / "cells").glob("*/record.json")
    return json.loads(path.read_text())


def test_a_tracker_that_is_not_installed_is_one_line_before_any_training(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("tensorboard", "wandb") else real(name, *a)
    )
    path = write_spec(tmp_path / "s.yaml", spec_with({"tensorboard": True}))
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 2 and "logging.tensorboard needs the tensorboard package: pip install tensorboard" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "tiny").exists()
    code, out, err = run_cli(
        ["sweep", path, "logging.tensorboard=false", "logging.wandb={project: p}", "--out", tmp_path]
    )
    assert code == 2 and "logging.wandb needs the wandb package" in err


@pytest.mark.skipif(not HAS["tensorboard"], reason="tensorboard is not installed (pip install tensorboard)")
def test_tensorboard_gets_each_cells_curves_and_the_loss_tables(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = write_spec(tmp_path / "s.yaml", spec_with({"tensorboard": True}))
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 0, err
    run = tmp_path / "tiny"
    assert "tensorboard: 1 sweep points logged now" in " ".join(out.split())
    rec = record(run)
    (point,) = [p.parent for p in (run / "tensorboard" / "sqrt-wd").rglob("events.out.tfevents.*")]
    assert point.relative_to(run / "tensorboard").as_posix() == "sqrt-wd/w32/eta0.015625_wd0.1/seed0"
    acc = EventAccumulator(str(point))
    acc.Reload()
    for tag, curve in (("loss/train", rec["curves"]["train"]), ("loss/val", rec["curves"]["val"])):
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _, _ in curve]
        assert [v for _, v in got] == pytest.approx([x for _, _, x in curve], rel=1e-6)
    summary = EventAccumulator(str(run / "tensorboard" / "summary"), size_guidance={"tensors": 0})
    summary.Reload()
    text = summary.Tensors("loss tables/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "sqrt-wd, width 32" in text and "λ \\ η" in text
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])  # a rerun logs nothing twice
    assert code == 0 and "tensorboard: 0 sweep points logged now" in " ".join(out.split())
    assert len(list((run / "tensorboard" / "sqrt-wd").rglob("events.out.tfevents.*"))) == 1


@pytest.mark.skipif(not HAS["wandb"], reason="wandb is not installed (pip install wandb)")
def test_wandb_offline_run_holds_the_curves_and_the_results(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    path = write_spec(tmp_path / "s.yaml", spec_with({"wandb": {"project": "lwscale-test"}}))
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 0, err
    run = tmp_path / "tiny"
    assert "wandb (offline)" in out and "wandb sync" in out
    (offline,) = (run / "wandb").glob("offline-run-*")
    tables = {p.name.split("_")[0]: json.loads(p.read_text()) for p in offline.rglob("*.table.json")}
    rec = record(run)
    curves = tables["curves"]
    assert len(curves["data"]) == len(rec["curves"]["train"]) + len(rec["curves"]["val"])
    split, step, loss = (curves["columns"].index(c) for c in ("split", "step", "loss"))
    val = [(r[step], r[loss]) for r in curves["data"] if r[split] == "val"]
    assert val == [(s, pytest.approx(x)) for s, _, x in rec["curves"]["val"]]
    results = tables["results"]
    row = dict(zip(results["columns"], results["data"][0]))
    assert row["rule"] == "sqrt-wd" and row["final_val_loss"] == pytest.approx(rec["final_val_loss"])
