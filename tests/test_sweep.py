"""lwscale sweep end to end on real text: plan, store, resume, bad input, interrupts."""
import copy
import json
import math
import time

import pandas as pd
import pytest

from conftest import TINY_SPEC, run_cli, write_spec
from lwscale.rules import class_hparams
from lwscale.store import COLUMNS


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
        from lwscale.schedule import factor_sum

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
    from lwscale.spec import parse_spec

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
    assert "estimated training time" in out and "timescales" in out
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


def test_pairs_grid_is_sized_by_its_slowest_pair():
    """docs/science.md §5: a Figure-1 style pairs grid is sized by the cell that completes the fewest
    timescales, so the plan table and the warning use that pair, not a made-up centre."""
    from lwscale.plan import centre_cells, make_plan
    from lwscale.reports.tables import plan_table, timescale_warning
    from lwscale.spec import parse_spec

    spec = copy.deepcopy(TINY_SPEC)
    spec["rules"], spec["model"]["widths"] = ["sqrt-wd"], [32]
    spec["grid"] = {"pairs": [[0.01, 0.1], [0.02, 0.2], [0.005, 0.05]]}
    plan = make_plan(parse_spec(spec))
    (_, _, cell), = centre_cells(plan)
    assert cell.matrix_tau() == pytest.approx(1 / (0.005 * 0.05))      # m = 1: lr = eta, wd = lambda
    assert cell.matrix_timescales() == min(c.matrix_timescales() for c in plan.cells)
    assert "the slowest pair" in plan_table(plan).title
    assert timescale_warning(plan).startswith("the slowest pair completes fewer than 3")
    spec["grid"]["pairs"].append([0.01, 0.0])          # no weight decay: not the pair that sizes the run
    (_, _, cell), = centre_cells(make_plan(parse_spec(spec)))
    assert cell.matrix_tau() == pytest.approx(1 / (0.005 * 0.05))


def test_command_line_overrides_reach_the_spec(tmp_path):
    path = write_spec(tmp_path / "s.yaml", {**TINY_SPEC, "rules": ["sqrt-wd"]})   # 16 cells, 8 per width
    code, out, err = run_cli(["sweep", path, "--dry-run", "--cells-per-stack", "3", "--device", "cpu",
                              "--out", tmp_path / "r"])
    assert code == 0, err
    assert "16 cells in 6 stacks of up to 3 on cpu" in out    # 8 cells per width -> stacks of 3, 3, 2
    for flag, value, msg in [("--device", "tpu", "command line: train: device must be auto, cpu"),
                             ("--runner", "cluster", "command line: runner.kind: Input should be 'local'")]:
        code, out, err = run_cli(["sweep", path, flag, value, "--out", tmp_path / "r"])
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, (flag, err)
    assert not (tmp_path / "r").exists()


def test_with_overrides_replaces_the_given_keys_only():
    from lwscale.spec import SpecError, parse_spec, with_overrides

    spec = parse_spec(TINY_SPEC)
    assert with_overrides(spec, train={"device": None}, runner={"kind": None}) is spec   # options not given
    new = with_overrides(spec, train={"cells_per_stack": 4, "device": None, "diagnostics": False},
                         runner={"kind": "gpus"})
    assert (new.train.cells_per_stack, new.train.diagnostics, new.runner.kind) == (4, False, "gpus")
    assert new.train.device == "auto" and new.train.steps == 20 and new.model == spec.model
    assert spec.train.cells_per_stack == "auto" and spec.runner.kind == "local"       # the original is kept
    with pytest.raises(SpecError, match=r"^--steps: train.steps: Input should be greater than or equal to 1$"):
        with_overrides(spec, "--steps", train={"steps": 0})


def test_dry_run_of_a_gpu_sized_spec_on_cpu_notes_instead_of_timing(tmp_path):
    # configs/gpu-scale.yaml's width 2048 once timed for many minutes on the CPU before printing anything
    spec = {"name": "big", "model": {"widths": [256, 2048], "depth": 8, "head_dim": 64, "seq_len": 256},
            "data": {"source": "synthetic", "vocab_size": 4096}, "train": {"steps": 100, "batch_size": 32},
            "grid": {"eta": [1e-3], "wd": [0.1]}, "rules": ["sqrt-wd"]}
    t0 = time.perf_counter()
    code, out, err = run_cli(["sweep", write_spec(tmp_path / "s.yaml", spec), "--dry-run", "--device", "cpu",
                              "--out", tmp_path / "r"])
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
    from lwscale.spec import parse_spec

    root = tmp_path / "copy"
    shutil.copytree(tiny_run.store.root, root / "tiny")
    spec = copy.deepcopy(TINY_SPEC)
    spec["rules"] = ["sqrt-wd"]
    again = run_sweep(parse_spec(spec), out_dir=root)
    assert again.summary.done == 0
    assert set(again.table["rule"]) == {"sqrt-wd", "const-wd"} and len(again.table) == 32


def test_version_flag_alone():
    # `lwscale --version` used to fail with "Missing command" (exit 2)
    from lwscale import __version__

    code, out, err = run_cli(["--version"])
    assert code == 0, err
    assert out.strip() == f"lwscale {__version__}"
