"""lwscale sweep end to end on real text: plan, store, resume, bad input, interrupts."""

import copy
import json
import math
import time

import pandas as pd
import pytest
from conftest import TINY_SPEC, run_cli, write_spec

from lwscale.rundir.store import COLUMNS
from lwscale.science.rules import class_hparams


def test_tiny_sweep_results(tiny_run):
    df = pd.read_csv(tiny_run.store.root / "results.csv")
    assert list(df.columns) == COLUMNS
    assert len(df) == 2 * 2 * 4 * 2  # rules x widths x grid x seeds
    assert set(df["status"]) == {"done"}
    assert not df.duplicated(["rule", "width", "eta", "wd", "seed"]).any()
    # every muP rule shares the base-width cells: 8 physical cells there, 16 at width 64
    assert df[df.width == 32]["cell_id"].nunique() == 8
    assert df[df.width == 64]["cell_id"].nunique() == 16
    assert (df["final_val_loss"] < df["initial_loss"]).all()
    assert df["final_val_loss"].between(1.0, math.log(256) + 0.5).all()


def test_records_carry_rule_arithmetic(tiny_run):
    df = pd.read_csv(tiny_run.store.root / "results.csv")
    for r in df[df.width == 64].itertuples():
        lr, wd = class_hparams(r.rule, r.eta, r.wd, 2.0, "matrix")
        assert r.lr_matrix == pytest.approx(lr) and r.wd_matrix == pytest.approx(wd)
        assert r.lr_vector == pytest.approx(r.eta)
        assert r.tau_matrix == pytest.approx(1 / (lr * wd))
        # cosine to 10% after 2 warmup steps: sum of factors over 20 steps
        from lwscale.science.schedule import factor_sum

        assert r.timescales == pytest.approx(lr * wd * factor_sum(20, 2, "cosine", 0.1))
    rec = json.loads(next((tiny_run.store.root / "cells").glob("*/record.json")).read_text())
    assert rec["schema"] == 1 and rec["lwscale_version"]
    assert len(rec["curves"]["val"]) == 3 and rec["curves"]["val"][0][0] == 0  # steps 0, 10, 20
    assert len(rec["curves"]["train"]) == 4
    assert rec["tokens"] == 20 * 4 * 32 and rec["tokens_per_s"] > 0


def test_seeds_and_common_random_numbers(tiny_run):
    df = pd.read_csv(tiny_run.store.root / "results.csv")
    base = df[(df.width == 32) & (df.rule == "sqrt-wd")]
    # different seeds give different losses; same seed same init across cells (same initial loss)
    assert base.groupby("seed")["initial_loss"].nunique().max() == 1
    assert base.groupby("seed")["initial_loss"].first().nunique() == 2


def test_rerun_trains_nothing(tiny_run):
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    before = {p: p.stat().st_mtime_ns for p in (tiny_run.store.root / "cells").glob("*/record.json")}
    t0 = time.perf_counter()
    again = run_sweep(parse_spec(TINY_SPEC), out_dir=tiny_run.store.root.parent)
    assert time.perf_counter() - t0 < 5
    assert again.summary.done == 0 and not again.interrupted
    after = {p: p.stat().st_mtime_ns for p in (tiny_run.store.root / "cells").glob("*/record.json")}
    assert before == after
    pd.testing.assert_frame_equal(again.table, tiny_run.table)


def test_changed_spec_is_refused_but_extensions_are_not(tiny_run, tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["train"]["steps"] = 21
    code, out, err = run_cli(["sweep", write_spec(tmp_path / "s.yaml", spec), "--out", tiny_run.store.root.parent])
    assert code == 2 and "train.steps: 20 -> 21" in err and "--out" in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_dry_run_estimates(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    code, out, err = run_cli(["sweep", write_spec(tmp_path / "s.yaml", spec), "--dry-run", "--out", tmp_path / "r"])
    assert code == 0, err
    assert "estimated time" in out and "timescales" in out
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


def test_pairs_grid_is_sized_by_its_slowest_pair():
    """docs/science.md §5: a Figure-1 style pairs grid is sized by the cell that completes the fewest
    timescales, so the plan table and the warning use that pair, not a made-up centre."""
    from lwscale.reports.tables import plan_table, timescale_warning
    from lwscale.sweep.plan import centre_cells, make_plan
    from lwscale.sweep.spec import parse_spec

    spec = copy.deepcopy(TINY_SPEC)
    spec["rules"], spec["model"]["widths"] = ["sqrt-wd"], [32]
    spec["grid"] = {"pairs": [[0.01, 0.1], [0.02, 0.2], [0.005, 0.05]]}
    plan = make_plan(parse_spec(spec))
    ((_, _, cell),) = centre_cells(plan)
    assert cell.matrix_tau() == pytest.approx(1 / (0.005 * 0.05))  # m = 1: lr = eta, wd = lambda
    assert cell.matrix_timescales() == min(c.matrix_timescales() for c in plan.cells)
    assert "the slowest pair" in plan_table(plan).title
    assert timescale_warning(plan).startswith("the slowest pair completes fewer than 3")
    spec["grid"]["pairs"].append([0.01, 0.0])  # no weight decay: not the pair that sizes the run
    ((_, _, cell),) = centre_cells(make_plan(parse_spec(spec)))
    assert cell.matrix_tau() == pytest.approx(1 / (0.005 * 0.05))


def test_command_line_overrides_reach_the_spec(tmp_path):
    path = write_spec(tmp_path / "s.yaml", {**TINY_SPEC, "rules": ["sqrt-wd"]})  # 16 cells, 8 per width
    code, out, err = run_cli(
        ["sweep", path, "--dry-run", "--cells-per-stack", "3", "--device", "cpu", "--out", tmp_path / "r"]
    )
    assert code == 0, err
    assert "16 cells to train in 6 stacks of up to 3 on cpu" in out  # 8 cells per width -> stacks of 3, 3, 2
    for flag, value, msg in [
        ("--device", "tpu", "command line: train: device must be auto, cpu"),
        ("--runner", "cluster", "command line: runner.kind: Input should be 'local'"),
    ]:
        code, out, err = run_cli(["sweep", path, flag, value, "--out", tmp_path / "r"])
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, (flag, err)
    assert not (tmp_path / "r").exists()


def test_with_overrides_replaces_the_given_keys_only():
    from lwscale.sweep.spec import SpecError, parse_spec, with_overrides

    spec = parse_spec(TINY_SPEC)
    assert with_overrides(spec, train={"device": None}, runner={"kind": None}) is spec  # options not given
    new = with_overrides(
        spec, train={"cells_per_stack": 4, "device": None, "diagnostics": False}, runner={"kind": "gpus"}
    )
    assert (new.train.cells_per_stack, new.train.diagnostics, new.runner.kind) == (4, False, "gpus")
    assert new.train.device == "auto" and new.train.steps == 20 and new.model == spec.model
    assert spec.train.cells_per_stack == "auto" and spec.runner.kind == "local"  # the original is kept
    with pytest.raises(SpecError, match=r"^--steps: train.steps: Input should be greater than or equal to 1$"):
        with_overrides(spec, "--steps", train={"steps": 0})


def test_dotted_overrides_of_spec_keys(tmp_path):
    """`lwscale sweep SPEC train.steps=3 grid.wd='[0.1,0.3]'`: dotted keys, YAML values, validated
    like the file (a bad one is one line naming it, exit 2), and written into the run's spec.yaml."""
    import yaml

    spec = copy.deepcopy(TINY_SPEC)
    spec.update(rules=["sqrt-wd"], grid={"eta": [2**-6], "wd": [0.1]})
    spec["model"]["widths"], spec["train"]["seeds"] = [32], [0]
    path = write_spec(tmp_path / "s.yaml", spec)
    code, out, err = run_cli(
        [
            "sweep",
            path,
            "grid.wd=[0.1, 0.3]",
            "train.seeds=[0,1]",
            "--dry-run",
            "--device",
            "cpu",
            "--cells-per-stack",
            "1",
            "--out",
            tmp_path / "r",
        ]
    )
    assert code == 0, err
    assert "4 cells" in out and "train.seeds=[0,1]" in out  # 2 wd x 2 seeds; the overrides are echoed
    assert not (tmp_path / "r").exists()
    for arg, msg in [
        ("train.stepz=5", "command-line override train.stepz=5: train.stepz: unknown key"),
        ("train.steps=0", "override train.steps=0: train.steps: Input should be greater than or equal"),
        ("model.widths=[32, 40]", "override model.widths=[32, 40]: model: width 40 is not divisible"),
        ("grid.wd=[0.1,", "override grid.wd=[0.1,: malformed YAML value"),
        ("train.steps.x=1", "override train.steps.x=1: train.steps is not a section"),
        ("steps", "'steps' is not KEY=VALUE"),
        ("=3", "'=3' is not KEY=VALUE"),
    ]:
        code, out, err = run_cli(["sweep", path, arg, "--dry-run", "--out", tmp_path / "r"])
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, (arg, err)
    # alternatives replace each other, as in a file that gives only one of them
    code, out, err = run_cli(
        [
            "sweep",
            path,
            "train.tokens=384",
            "grid.pairs=[[0.01, 0.1]]",
            "--dry-run",
            "--device",
            "cpu",
            "--out",
            tmp_path / "r",
        ]
    )
    assert code == 0 and "1 cells" in out, err
    # a real (3-step) sweep records them in the resolved spec.yaml, so a rerun without them is refused
    code, out, err = run_cli(["sweep", path, "train.steps=3", "train.eval_interval=3", "--out", tmp_path / "r"])
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "r" / "tiny" / "spec.yaml").read_text())
    assert saved["train"]["steps"] == 3 and saved["train"]["eval_interval"] == 3
    code, out, err = run_cli(["sweep", path, "--out", tmp_path / "r"])
    assert code == 2 and "train.steps: 3 -> 20" in err


def test_dry_run_of_a_rerun_refuses_a_changed_spec_and_counts_only_the_cells_left(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(rules=["sqrt-wd"], grid={"eta": [2**-6], "wd": [0.1]})
    spec["model"]["widths"] = [32]
    spec["train"].update(seeds=[0], steps=4, eval_interval=2, eval_tokens=256, cells_per_stack=1)
    path = write_spec(tmp_path / "s.yaml", spec)
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])  # 1 cell, trained
    assert code == 0, err
    before = sorted(p.name for p in (tmp_path / "tiny").rglob("*"))
    # the sweep would refuse a changed spec: so does the dry run, with the sweep's own line
    code, out, err = run_cli(["sweep", path, "train.steps=5", "--dry-run", "--out", tmp_path])
    assert code == 2 and "was made with different settings (train.steps: 4 -> 5)" in err
    assert len(err.strip().splitlines()) == 1
    # a wider grid: the finished cell is skipped, and said to be
    code, out, err = run_cli(
        ["sweep", path, "grid.eta=[0.015625, 0.03125, 0.0625]", "--dry-run", "--device", "cpu", "--out", tmp_path]
    )
    assert code == 0, err
    flat = " ".join(out.split())
    assert "dry run: 2 cells to train in 2 stacks of up to 1 on cpu (1 of 3 already finished, skipped)" in flat
    assert "training" in flat and "evaluation" in flat and "data preparation" in flat
    assert "3 evaluations of 256 tokens per cell" in flat  # steps 0, 2 and 4
    code, out, err = run_cli(["sweep", path, "--dry-run", "--device", "cpu", "--out", tmp_path])
    assert code == 0 and "nothing to train: all 1 cells are already finished" in " ".join(out.split()), out
    assert sorted(p.name for p in (tmp_path / "tiny").rglob("*")) == before  # a dry run writes nothing


def test_dry_run_of_a_gpu_sized_spec_on_cpu_notes_instead_of_timing(tmp_path):
    # configs/gpu-scale.yaml's width 2048 once timed for many minutes on the CPU before printing anything
    spec = {
        "name": "big",
        "model": {"widths": [256, 2048], "depth": 8, "head_dim": 64, "seq_len": 256},
        "data": {"source": "synthetic", "vocab_size": 4096},
        "train": {"steps": 100, "batch_size": 32},
        "grid": {"eta": [1e-3], "wd": [0.1]},
        "rules": ["sqrt-wd"],
    }
    t0 = time.perf_counter()
    code, out, err = run_cli(
        ["sweep", write_spec(tmp_path / "s.yaml", spec), "--dry-run", "--device", "cpu", "--out", tmp_path / "r"]
    )
    assert code == 0, err
    assert time.perf_counter() - t0 < 30
    assert "no time estimate on cpu" in out and "width 2048" in out and "2 cells" in out
    assert not (tmp_path / "r").exists()


BAD = [
    (None, "spec file not found"),
    ("model: [1, 2\n", "s.yaml:2: malformed YAML"),
    ("grid: {eta: [0.01], wd: [0.1]}\nmodel:\n  widths: [32]\n  colour: red\n", "s.yaml:4: model.colour: unknown key"),
    ("grid: {eta: [0.01], wd: [0.1]}\ntrain: {steps: many}\n", "train.steps: Input should be a valid integer"),
    ("grid: {eta: [0.01], wd: [0.1]}\nmodel: {widths: [32, 40], head_dim: 16}\n", "width 40 is not divisible"),
    ("grid: {eta: [0.01], wd: [0.1]}\nmodel: {widths: [0, 32]}\n", "widths must be positive"),
    ("grid: {eta: [0.01], wd: [0.1]}\nmodel: {widths: [34], head_dim: 2, ffn_mult: 2.75}\n", "not a whole number"),
    ("grid: {eta: [], wd: [0.1]}\n", "grid.eta: the axis is empty"),
    ("grid: {eta: [0.01, -1], wd: [0.1]}\n", "learning rates must be positive"),
    ("rules: [sqrt-wd]\n", "grid: required key is missing"),
]


@pytest.mark.parametrize("text,msg", BAD)
def test_bad_input_is_one_line_exit_2(tmp_path, text, msg):
    path = tmp_path / "s.yaml"
    if text is not None:
        path.write_text(text)
    code, out, err = run_cli(["sweep", path])
    assert code == 2, (out, err)
    assert msg in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


def test_unwritable_out_dir(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", TINY_SPEC)
    code, out, err = run_cli(["sweep", spec, "--out", tmp_path / "r"], env={"LWSCALE_FAULT": "write:errno=EACCES"})
    assert code == 2 and "cannot write to the run directory" in err and "Permission denied" in err
    assert len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "r").rglob("*.tmp"))  # nothing half-written kept


def test_interrupt_keeps_finished_cells_and_resumes(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["train"]["seeds"] = [0]
    spec["rules"] = ["sqrt-wd"]
    path = write_spec(tmp_path / "s.yaml", spec)
    code, out, _ = run_cli(["sweep", path, "--out", tmp_path], env={"LWSCALE_FAULT": "interrupt:step=3:width=64"})
    assert code == 130 and "run the same command again to resume" in out
    df = pd.read_csv(tmp_path / "tiny" / "results.csv")
    assert (df[df.width == 32]["status"] == "done").all()  # the base width finished first
    assert (df[df.width == 64]["status"] == "pending").all()
    code, out, _ = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 0
    df = pd.read_csv(tmp_path / "tiny" / "results.csv")
    assert len(df) == 8 and (df["status"] == "done").all() and df["cell_id"].is_unique
    assert "4 already finished, 4 to train" in out


def test_divergence_is_data_and_failure_exit_1(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(rules=["sqrt-wd"], grid={"eta": [2**-6], "wd": [0.1]})
    spec["model"]["widths"] = [32]
    spec["train"]["seeds"] = [0, 1]
    path = write_spec(tmp_path / "s.yaml", spec)
    # seed 1's stack raises; seed 0's cell becomes NaN at step 4 -> diverged
    env = {"LWSCALE_FAULT": "nan:step=4:cell=0:seed=0,raise:step=6:seed=1:once=" + str(tmp_path / "fired")}
    code, out, _ = run_cli(["sweep", path, "--out", tmp_path, "--cells-per-stack", "1"], env=env)
    assert code == 1 and "--retry-failed" in out
    df = pd.read_csv(tmp_path / "tiny" / "results.csv").sort_values("seed")
    assert df["status"].tolist() == ["diverged", "failed"]
    assert df["diverged_step"].iloc[0] == 5 and "injected fault" in df["reason"].iloc[1]
    code, out, _ = run_cli(["sweep", path, "--out", tmp_path, "--retry-failed"])
    assert code == 0
    df = pd.read_csv(tmp_path / "tiny" / "results.csv").sort_values("seed")
    assert df["status"].tolist() == ["diverged", "done"]  # diverged is a result: not retried


def test_table_keeps_points_of_earlier_specs(tiny_run, tmp_path):
    """A later sweep with fewer rules still lists the earlier rule's rows, from the records."""
    import shutil

    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    root = tmp_path / "copy"
    shutil.copytree(tiny_run.store.root, root / "tiny")
    spec = copy.deepcopy(TINY_SPEC)
    spec["rules"] = ["sqrt-wd"]
    again = run_sweep(parse_spec(spec), out_dir=root)
    assert again.summary.done == 0
    assert set(again.table["rule"]) == {"sqrt-wd", "const-wd"} and len(again.table) == 32


def test_tables_keep_the_specs_rule_order(tmp_path):
    """The sweep's final tables, report.md's and diagnose's list the rules as the spec does,
    not alphabetically (at the base width every muP rule shares the one cell trained here)."""
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(rules=["sqrt-wd", "linear-wd", "const-wd"], grid={"eta": [2**-6], "wd": [0.1]})
    spec["model"]["widths"] = [32]
    spec["train"].update(seeds=[0], steps=4, eval_interval=2, eval_tokens=256)
    code, out, err = run_cli(["sweep", write_spec(tmp_path / "s.yaml", spec), "--out", tmp_path])
    assert code == 0, err
    order = ["sqrt-wd, width 32", "linear-wd, width 32", "const-wd, width 32"]
    assert [out.index(t) for t in order] == sorted(out.index(t) for t in order), out
    code, out, err = run_cli(["report", tmp_path / "tiny"])
    assert code == 0, err
    text = (tmp_path / "tiny" / "report.md").read_text()
    assert [text.index(f"### {t}") for t in order] == sorted(text.index(f"### {t}") for t in order)
    diag = (tmp_path / "tiny" / "diagnose.md").read_text()
    heads = [diag.index(f"## {r}: sigma_max") for r in ("sqrt-wd", "linear-wd", "const-wd")]
    assert heads == sorted(heads)


def test_version_flag_alone():
    # `lwscale --version` used to fail with "Missing command" (exit 2)
    from lwscale import __version__

    code, out, err = run_cli(["--version"])
    assert code == 0, err
    assert out.strip() == f"lwscale {__version__}"


def test_the_plan_says_why_it_has_fewer_cells_than_sweep_points():
    """2 rules x 2 widths x 4 (eta, wd) x 2 seeds = 32 points; at the base width both rules give
    the same model and (lr, wd), so the 8 proxy cells serve both: 24 cells."""
    from conftest import TINY_SPEC

    from lwscale.reports.tables import shared_cells_note
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import parse_spec

    note = shared_cells_note(make_plan(parse_spec(TINY_SPEC)))
    assert note.startswith("32 sweep points are 24 distinct cells") and "base width" in note
    one_rule = parse_spec({**TINY_SPEC, "rules": ["sqrt-wd"]})
    assert shared_cells_note(make_plan(one_rule)) is None
