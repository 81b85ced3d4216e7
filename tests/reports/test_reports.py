"""lwscale plot and lwscale report on hand-made runs: NaN, diverged, failed and single-cell
inputs drawn as real images; the default RUN_DIR; report.md with and without diagnostics."""

import math
import os
import time

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from runfixtures import make_run, rows_for

from lwscale.reports.plots import colour_norm, heatmaps
from lwscale.reports.run import load_run
from lwscale.reports.tables import cell_stats, mean_se

ETAS = [2.0**-9, 2.0**-8, 2.0**-7]
WDS = [0.0, 0.1, 0.3]


def loss(e, w, s):
    return 2.5 + 0.1 * (math.log2(e) + 8) ** 2 + 0.05 * w + 0.01 * s


def image(path):
    """The PNG as an array, checked to be a real picture: a sane size and varied pixels."""
    assert path.exists() and path.stat().st_size > 10_000, path
    img = mpimg.imread(path)
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert float(np.std(img[..., :3])) > 0.05  # not blank
    return img[..., :3]


def grey_hatched_fraction(img):
    """Fraction of pixels in the diverged cells' grey (0.75) or hatch-edge grey (0.35)."""
    g = (np.abs(img - 0.75).max(axis=-1) < 0.02) | (np.abs(img - 0.35).max(axis=-1) < 0.02)
    return float(g.mean())


def test_mean_se_over_seeds():
    m, se, n = mean_se([3.0, 3.2, 3.4, math.nan])  # NaN: a seed that did not finish
    assert (m, n) == (pytest.approx(3.2), 3) and se == pytest.approx(0.2 / math.sqrt(3))
    m, se, n = mean_se([3.0])  # one seed: no standard error
    assert m == 3.0 and math.isnan(se) and n == 1
    m, se, n = mean_se([])
    assert math.isnan(m) and math.isnan(se) and n == 0


def test_cell_stats_aggregates_only_finished_seeds():
    row = dict(rule="sqrt-wd", width=32, eta=0.01, timescales=2.0)
    df = pd.DataFrame(
        [
            {**row, "wd": 0.1, "seed": 0, "status": "done", "final_val_loss": 3.0},
            {**row, "wd": 0.1, "seed": 1, "status": "done", "final_val_loss": 3.4},
            {**row, "wd": 0.1, "seed": 2, "status": "diverged", "final_val_loss": 9.0},
            {**row, "wd": 0.2, "seed": 0, "status": "diverged", "final_val_loss": math.nan},
            {**row, "wd": 0.2, "seed": 1, "status": "failed", "final_val_loss": math.nan},
        ]
    )
    s = cell_stats(df).set_index("wd")
    assert s.loc[0.1, "loss"] == pytest.approx(3.2) and s.loc[0.1, "n"] == 2
    assert s.loc[0.1, "se"] == pytest.approx(0.2) and s.loc[0.1, "status"] == "done"  # sd 0.283 / sqrt 2
    assert math.isnan(s.loc[0.2, "loss"]) and s.loc[0.2, "n"] == 0 and s.loc[0.2, "status"] == "failed"
    assert list(cell_stats(df).columns) == ["rule", "width", "eta", "wd", "loss", "n", "status", "timescales", "se"]


@pytest.fixture
def messy_run(tmp_path):
    """Two widths, one rule, two seeds; at the target a NaN (failed) cell, diverged cells
    and a missing one; wd = 0 on the grid."""
    status = {(ETAS[2], 0.3): "diverged", (ETAS[2], 0.1): "diverged", (ETAS[0], 0.0): "failed"}
    rows = rows_for("sqrt-wd", 32, ETAS, WDS, [0, 1], loss) + rows_for(
        "sqrt-wd", 64, ETAS, WDS, [0, 1], loss, status=lambda e, w: status.get((e, w), "done")
    )
    rows = [r for r in rows if not (r["width"] == 64 and r["eta"] == ETAS[1] and r["wd"] == 0.0)]  # never trained
    return make_run(tmp_path / "messy", rows, [32, 64], ["sqrt-wd"], ETAS, WDS, seeds=[0, 1])


def test_plot_messy_run(messy_run):
    code, out, err = run_cli(["plot", messy_run, "--pdf"])
    assert code == 0, err
    figs = messy_run / "figures"
    for name in ("heatmaps", "slices", "curves", "transfer"):
        image(figs / f"{name}.png")
        assert (figs / f"{name}.pdf").stat().st_size > 1000
    heat = image(figs / "heatmaps.png")
    assert grey_hatched_fraction(heat) > 0.005  # the diverged cells are drawn grey and hatched


def test_diverged_cells_are_grey_and_absent_without_them(tmp_path):
    clean = make_run(tmp_path / "clean", rows_for("sqrt-wd", 32, ETAS, WDS, [0], loss), [32], ["sqrt-wd"], ETAS, WDS)
    div = make_run(
        tmp_path / "div",
        rows_for("sqrt-wd", 32, ETAS, WDS, [0], loss, status=lambda e, w: "diverged" if e == ETAS[2] else "done"),
        [32],
        ["sqrt-wd"],
        ETAS,
        WDS,
    )
    a = image(heatmaps(load_run(clean), clean / "figures")[0])
    b = image(heatmaps(load_run(div), div / "figures")[0])
    assert grey_hatched_fraction(b) > grey_hatched_fraction(a) + 0.01


def test_single_cell_run(tmp_path):
    root = make_run(
        tmp_path / "one", rows_for("sqrt-wd", 32, [0.01], [0.1], [0], loss), [32], ["sqrt-wd"], [0.01], [0.1]
    )
    code, out, err = run_cli(["plot", root])
    assert code == 0, err
    for name in ("heatmaps", "slices", "curves"):
        image(root / "figures" / f"{name}.png")
    assert not (root / "figures" / "transfer.png").exists()  # one width: nothing to transfer
    code, out, err = run_cli(["report", root])
    assert code == 0, err
    text = (root / "report.md").read_text()
    assert "Needs two widths" in text and "![heatmaps](figures/heatmaps.png)" in text


def test_colour_scale_is_robust_to_outliers():
    import pandas as pd

    stats = pd.DataFrame({"loss": [2.0 + 0.01 * i for i in range(50)] + [50.0], "status": ["done"] * 51})
    norm = colour_norm(stats)
    assert 2.0 <= norm.vmin < 2.05 and norm.vmax < 3.0  # the outlier does not wash out the scale


def test_relative_colours_measure_each_cell_from_its_panels_best(tmp_path):
    """Two widths a whole nat apart: on one loss scale the worse width is one flat colour;
    relative to each panel's best both show their valley on one scale from 0."""
    import pandas as pd

    stats = pd.DataFrame(
        {
            "rule": ["r"] * 8,
            "width": [32] * 4 + [128] * 4,
            "status": ["done"] * 8,
            "loss": [3.0, 3.1, 3.2, 3.4, 2.0, 2.1, 2.2, 2.4],
        }
    )
    norm = colour_norm(stats, relative=True)
    assert norm.vmin == 0.0 and norm.vmax == pytest.approx(np.quantile([0, 0.1, 0.2, 0.4] * 2, 0.65))
    assert colour_norm(stats).vmin >= 2.0
    run = make_run(
        tmp_path / "rel",
        rows_for("sqrt-wd", 32, ETAS, WDS, [0], loss)
        + rows_for("sqrt-wd", 128, ETAS, WDS, [0], lambda e, w, s: loss(e, w, s) - 1.0),
        [32, 128],
        ["sqrt-wd"],
        ETAS,
        WDS,
    )
    code, out, err = run_cli(["plot", run])  # relative is the default
    assert code == 0, err
    img = image(run / "figures" / "heatmaps.png")
    assert img.std() > 0.05
    code, out, err = run_cli(["plot", run, "--absolute"])
    assert code == 0, err
    assert not np.array_equal(image(run / "figures" / "heatmaps.png"), img)


def test_default_run_dir_is_the_latest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["plot"])
    assert code == 2 and "pass RUN_DIR" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["report"])
    assert code == 2 and "pass RUN_DIR" in err
    old = make_run(
        tmp_path / "runs" / "old", rows_for("sqrt-wd", 32, [0.01], [0.1], [0], loss), [32], ["sqrt-wd"], [0.01], [0.1]
    )
    new = make_run(
        tmp_path / "runs" / "new", rows_for("sqrt-wd", 32, [0.01], [0.1], [0], loss), [32], ["sqrt-wd"], [0.01], [0.1]
    )
    t = time.time()
    os.utime(old / "results.csv", (t - 100, t - 100))
    code, out, err = run_cli(["report"])
    assert code == 0, err
    assert (new / "report.md").exists() and not (old / "report.md").exists()


def test_plot_bad_width_exits_2(messy_run):
    code, out, err = run_cli(["plot", messy_run, "--proxy-width", 48])
    assert code == 2 and "proxy width 48 is not in the run" in err and len(err.strip().splitlines()) == 1


def test_report_includes_tables_transfer_figures_and_diagnostics(messy_run):
    figs = messy_run / "figures"
    figs.mkdir()
    (figs / "diagnose-spectra.png").write_bytes(b"\x89PNG fake")  # another tool's figure
    code, out, err = run_cli(["report", messy_run])
    assert code == 0, err
    text = (messy_run / "report.md").read_text()
    # report runs the diagnostics itself: without sigma_max records they are the loss surface's own
    # wd exponents, and diagnose.md is written as `lwscale diagnose` writes it
    assert "## Diagnostics (diagnose.md)" in text and (messy_run / "diagnose.md").exists()
    assert "widths 32, 64 (base width d₀ = 32" in text and "seeds [0, 1]" in text
    assert "### sqrt-wd, width 64" in text and "diverged" in text and "failed" in text
    assert "sqrt-wd: best cell per width 32: η = 0.00391, λ = 0 (loss 2.5050)" in text
    best = min(loss(e, w, 0) for e in ETAS for w in WDS) + 0.005  # mean over seeds 0, 1
    assert f"**{best:.4f} ± 0.0050** ★" in text
    assert "Proxy width 32 → target width 64" in text and "matrix (m 1->2)" in text
    assert "![diagnose-spectra](figures/diagnose-spectra.png)" in text
    # a stale diagnose.md from before is replaced, not shown beside the run's own
    (messy_run / "diagnose.md").write_text("# Diagnostics\nsigma_max flat across widths: alpha = 0.74\n")
    code, out, err = run_cli(["report", messy_run])
    assert code == 0, err
    assert "alpha = 0.74" not in (messy_run / "report.md").read_text()
    import pandas as pd

    df = pd.read_csv(messy_run / "results.csv")
    df["timescales"] = [0.5 if i % 2 else 4.0 for i in range(len(df))]
    df.to_csv(messy_run / "results.csv", index=False)
    code, out, err = run_cli(["report", messy_run])
    done = df[df.status == "done"]
    share = (done.timescales < 3).mean()
    assert f"; {share:.0%} of the cells completed fewer than 3" in (messy_run / "report.md").read_text()


def test_report_is_the_same_page_before_and_after_diagnose(tmp_path):
    """report runs the diagnostics itself, so report -> diagnose -> report and diagnose -> report
    give one page; an optimum on the grid's edge is said in "What it showed"."""
    import copy
    import shutil

    from conftest import TINY_SPEC

    from lwscale.runners.local import run_sweep
    from lwscale.sweep.spec import parse_spec

    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["widths"], spec["rules"] = [16, 32], ["sqrt-wd"]
    spec["train"].update(steps=12, seeds=[0], eval_interval=6, eval_tokens=256)
    run_sweep(parse_spec(spec), out_dir=tmp_path / "a")
    a, b = tmp_path / "a" / "tiny", tmp_path / "b" / "tiny"
    shutil.copytree(a, b)

    def report(root):
        code, out, err = run_cli(["report", root])
        assert code == 0, err
        return (root / "report.md").read_text().replace(str(root), "RUN")

    first = report(a)  # no diagnose.md yet
    assert "## Diagnostics" in first and "width exponent" in first and "![diagnose-" in first
    code, out, err = run_cli(["diagnose", a])
    assert code == 0, err
    assert report(a) == first
    code, out, err = run_cli(["diagnose", b])
    assert code == 0, err
    assert report(b) == first
    showed = first.split("## What it showed", 1)[1].split("\n## ", 1)[0]
    assert "on the grid's" in showed and "extend the" in showed  # 2 points an axis: the best is on an edge


def test_plot_without_finished_proxy_cells_says_why_no_transfer_figure(tmp_path):
    rows = rows_for("sqrt-wd", 32, ETAS[:2], WDS[1:], [0], loss, status=lambda e, w: "diverged") + rows_for(
        "sqrt-wd", 64, ETAS[:2], WDS[1:], [0], loss
    )
    root = make_run(tmp_path / "r", rows, [32, 64], ["sqrt-wd"], ETAS[:2], WDS[1:])
    code, out, err = run_cli(["plot", root])
    assert code == 0, err
    assert "no transfer figure: no finished cells at the proxy width 32" in out
    image(root / "figures" / "heatmaps.png")
    assert not (root / "figures" / "transfer.png").exists()


def test_tab_renders_the_same_cells_to_rich_and_markdown():
    from rich.console import Console

    from lwscale.reports.tables import Tab

    tab = Tab(
        "alpha [95% CI] per type",
        ["type", "alpha [95% CI]", "note"],
        [["q", "0.751 [0.700, 0.802]", "[red]not markup[/]"], ["k|v", "1", ""]],
    )
    assert tab.markdown().splitlines() == [
        "| type | alpha [95% CI] | note |",
        "|---|---|---|",
        "| q | 0.751 [0.700, 0.802] | [red]not markup[/] |",
        "| k\\|v | 1 |  |",
    ]
    console = Console(width=200, record=True, color_system=None)
    console.print(tab.rich())
    text = console.export_text()
    assert "alpha [95% CI] per type" in text and "[red]not markup[/]" in text and "0.751 [0.700, 0.802]" in text


def test_finished_rows_argmin_and_best_cells():
    """A row counts when it is done with a finite value; the lowest such loss is the argmin,
    per (rule, width) in best_cells; a panel with no finished row has none."""
    from lwscale.reports.tables import argmin, best_cells, finished

    stats = pd.DataFrame(
        {
            "rule": ["a"] * 4 + ["b"],
            "width": [32, 32, 32, 64, 32],
            "eta": [1.0, 2.0, 3.0, 4.0, 5.0],
            "wd": [0.1] * 5,
            "status": ["done", "done", "diverged", "done", "failed"],
            "loss": [3.0, math.inf, 1.0, math.nan, math.nan],
        }
    )
    assert finished(stats).tolist() == [True, False, False, False, False]
    assert bool(finished(stats.iloc[0])) and not finished(stats.iloc[2])  # one row
    assert argmin(stats)["eta"] == 1.0 and argmin(stats[stats["width"] == 64]) is None
    best = best_cells(stats)
    assert best[["rule", "width", "eta"]].values.tolist() == [["a", 32, 1.0]]
    assert best_cells(stats.iloc[3:]).empty


def test_number_formats():
    from lwscale.reports.fmt import num, pm

    assert (num(1234.5678), num(0.5, ".3g"), num(math.inf), num(math.nan), num(None)) == ("1235", "0.5", "∞", "–", "–")
    assert (pm(2.5, 0.01), pm(2.5, math.nan), pm(math.nan, 0.1), pm(None, None)) == (
        "2.5000 ± 0.0100",
        "2.5000",
        "–",
        "–",
    )


def test_a_transfer_figure_failure_is_a_warning_not_swallowed(tmp_path):
    """plot_all draws the other figures and says in one line why the transfer figure is
    missing: through ``warn`` (the CLI prints `warning: ...`), by default as a Python warning.
    A run with one width has no target: no transfer figure and nothing to warn about. A width
    the run lacks is a user error before anything is drawn."""
    from lwscale.core.errors import UserError
    from lwscale.reports.plots import plot_all

    rows = rows_for("sqrt-wd", 32, ETAS[:2], WDS[1:], [0], loss, status=lambda e, w: "diverged") + rows_for(
        "sqrt-wd", 64, ETAS[:2], WDS[1:], [0], loss
    )
    root = make_run(tmp_path / "r", rows, [32, 64], ["sqrt-wd"], ETAS[:2], WDS[1:])
    said = []
    paths = plot_all(load_run(root), warn=said.append)
    assert said == [
        "no transfer figure: no finished cells at the proxy width 32 for rule sqrt-wd; "
        "sweep it first or pass --eta and --wd"
    ]
    assert [p.name for p in paths] == ["heatmaps.png", "slices.png", "curves.png"]
    with pytest.warns(UserWarning, match="no transfer figure: no finished cells at the proxy width 32"):
        plot_all(load_run(root))
    code, out, err = run_cli(["plot", root])
    assert code == 0 and "warning: no transfer figure: no finished cells at the proxy width 32" in out, out + err

    one = make_run(tmp_path / "one", rows_for("sqrt-wd", 32, ETAS, WDS, [0], loss), [32], ["sqrt-wd"], ETAS, WDS)
    said = []
    assert [p.name for p in plot_all(load_run(one), warn=said.append)] == ["heatmaps.png", "slices.png", "curves.png"]
    assert said == []

    fresh = make_run(tmp_path / "fresh", rows_for("sqrt-wd", 32, ETAS, WDS, [0], loss), [32], ["sqrt-wd"], ETAS, WDS)
    for kw, what in (({"target": 48}, "target"), ({"proxy": 48}, "proxy")):
        with pytest.raises(UserError, match=f"{what} width 48 is not in the run"):
            plot_all(load_run(fresh), warn=said.append, **kw)
    assert said == [] and not (fresh / "figures").exists()


def test_the_shift_panel_marks_one_grid_step_and_every_figure_names_the_run(tmp_path, monkeypatch):
    """The transfer figure's shift panel draws one grid step either side of 0 (dotted, per axis),
    so that a shift of one grid step is not read as noise nor an error bar as the grid's spacing;
    the figures' titles start with the run's name."""
    from lwscale.reports import plots
    from lwscale.reports.run import load_run
    from lwscale.reports.transfer import transfer

    wds = [0.1, 0.3, 0.9]  # log2 step 1.585; ETAS: log2 step 1
    rows = rows_for("sqrt-wd", 32, ETAS, wds, [0, 1], loss) + rows_for("sqrt-wd", 64, ETAS, wds, [0, 1], loss)
    run = load_run(make_run(tmp_path / "r", rows, [32, 64], ["sqrt-wd"], ETAS, wds, seeds=(0, 1), name="named"))
    steps = plots.grid_steps(run)
    assert steps == pytest.approx((math.log2(ETAS[1] / ETAS[0]), math.log2(3)))
    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda fig, out, name, pdf: drawn.setdefault(name, fig) and [])
    plots.transfer_comparison(transfer(run, 32, 64), tmp_path, steps=steps, name=run.spec.name)
    fig = drawn["transfer"]
    dotted = sorted(round(ln.get_ydata()[0], 3) for ln in fig.axes[1].lines if ln.get_linestyle() == ":")
    assert dotted == sorted(round(v, 3) for s in steps for v in (-s, s))
    assert "one grid step" in fig.axes[1].get_title() and "one grid step" not in fig.axes[0].get_title()
    assert fig._suptitle.get_text().startswith("named: transfer from width 32 to 64")
    plots.slices(run, tmp_path)
    plots.curves(run, tmp_path)
    assert all(drawn[n]._suptitle.get_text().startswith("named: ") for n in ("slices", "curves"))


def test_a_synthetic_runs_loss_floor_is_in_its_tables_and_figures(tmp_path, monkeypatch):
    """On synthetic data no loss can go below the teacher's entropy, entropy x ln V: report.md
    says it under the loss tables, the heatmaps' title says it and the curves draw it."""
    import yaml

    from lwscale.reports import plots

    rows = rows_for("sqrt-wd", 32, ETAS, WDS[1:], [0], loss) + rows_for("sqrt-wd", 64, ETAS, WDS[1:], [0], loss)
    root = make_run(tmp_path / "r", rows, [32, 64], ["sqrt-wd"], ETAS, WDS[1:])
    spec = yaml.safe_load((root / "spec.yaml").read_text())
    spec["data"] = {"source": "synthetic", "vocab_size": 256, "teacher": {"entropy": 0.5}}
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    floor = 0.5 * math.log(256)
    code, out, err = run_cli(["report", root])
    assert code == 0, err
    assert f"loss floor {floor:.3f} nats: the teacher's entropy (0.5 x ln 256)" in (root / "report.md").read_text()
    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda fig, out, name, pdf: drawn.setdefault(name, fig) and [])
    run = load_run(root)
    plots.heatmaps(run, tmp_path)
    plots.curves(run, tmp_path)
    assert f"loss floor {floor:.3f} nats" in drawn["heatmaps"]._suptitle.get_text()
    dashed = [ln for ln in drawn["curves"].axes[0].lines if ln.get_linestyle() == "--"]
    assert [round(ln.get_ydata()[0], 6) for ln in dashed] == [round(floor, 6)]
    assert drawn["curves"].axes[0].get_ylim()[0] < floor  # in the frame


def test_a_cell_still_missing_a_seed_does_not_win_the_argmin():
    """Mid-sweep, cell B has one of its two seeds: its lower one-seed mean is not compared with
    cell A's two-seed mean; once B's second seed is in, the two compete on equal terms."""
    from lwscale.reports.tables import argmin

    def row(eta, seed, loss, status="done"):
        return {
            "rule": "sqrt-wd",
            "width": 32,
            "steps": 10,
            "eta": eta,
            "wd": 0.1,
            "seed": seed,
            "status": status,
            "final_val_loss": loss,
            "timescales": 1.0,
        }

    rows = [row(0.01, 0, 2.50), row(0.01, 1, 2.52), row(0.02, 0, 2.40), row(0.02, 1, math.nan, "pending")]
    assert argmin(cell_stats(pd.DataFrame(rows)))["eta"] == 0.01
    rows[-1] = row(0.02, 1, 2.44)
    assert argmin(cell_stats(pd.DataFrame(rows)))["eta"] == 0.02
