"""The GPU path, checked on the CPU: bf16 autocast through the trainer, and dry runs of the
two GPU scripts (benchmarks/gpu_check.sh, benchmarks/study_gpu.sh) with tiny stand-ins.

The dry runs are end to end and take minutes: they are marked ``slow``, which the default
run leaves out (pyproject's addopts); run them with ``python -m pytest -m slow``.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_SPEC

from lwscale.sweep.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]


# ---- bf16 autocast on the CPU -------------------------------------------------------------------
@pytest.mark.skipif(not torch.amp.autocast_mode.is_autocast_available("cpu"), reason="no CPU autocast here")
def test_bf16_stacked_equals_single_on_cpu():
    """A stacked K = 3 bf16 run (train.precision bf16, the trainer's autocast) gives the losses
    of three single bf16 runs, within tests/training/test_gpu.py's tolerance for the same comparison
    (rtol = atol = 3e-2 over 20 steps); the runs really are bf16 (they differ from fp32)."""
    from lwscale.data.load import load_dataset
    from lwscale.sweep.plan import make_plan
    from lwscale.training.loop import train_stack

    def spec_for(precision):
        train = {
            **TINY_SPEC["train"],
            "steps": 20,
            "warmup": 2,
            "log_interval": 1,
            "eval_interval": 10,
            "eval_tokens": 512,
            "seeds": [0],
            "precision": precision,
            "compile": False,
            "device": "cpu",
        }
        return parse_spec(
            {
                **TINY_SPEC,
                "model": {**TINY_SPEC["model"], "widths": [64], "base_width": 32},
                "rules": ["sqrt-wd", "const-wd", "linear-wd"],
                "grid": {"eta": [2**-6], "wd": [0.1]},
                "train": train,
            }
        )

    spec = spec_for("bf16")
    cells = make_plan(spec).cells
    assert len(cells) == 3
    m = spec.model
    data = load_dataset(
        spec.data,
        m.seq_len,
        spec.train.batch_size,
        spec.train.eval_tokens,
        torch.device("cpu"),
        max_width=64,
        depth=m.depth,
        head_dim=m.head_dim,
    )
    data.prepare([0], spec.train.steps)
    cpu = torch.device("cpu")

    def curve(rec):
        return torch.tensor([loss for _, _, loss in rec.curves["train"]])

    stacked = train_stack(cells, spec, data, cpu)
    assert {r.precision for r in stacked} == {"bf16"}
    for k, cell in enumerate(cells):
        (single,) = train_stack([cell], spec, data, cpu)
        torch.testing.assert_close(curve(stacked[k]), curve(single), rtol=3e-2, atol=3e-2)
        assert curve(single)[-1] < curve(single)[0]
    (fp32,) = train_stack(cells[:1], spec_for("fp32"), data, cpu)
    assert (curve(fp32) - curve(stacked[0])).abs().max() > 1e-4  # autocast did run in bf16


# ---- dry runs of the GPU scripts ----------------------------------------------------------------
def _script_env(out: Path) -> dict:
    """The environment the scripts get: this interpreter's python3 first, their output in
    ``out``, and the test session's private data cache."""
    env = {**os.environ, "OUT": str(out), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("LWSCALE_FAULT", None)
    return env


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu(tmp_path):
    """GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh: every step runs with tiny sizes. The
    GPU tests are collected and skip, bench_step.py accepts its arguments and stops at its
    CUDA check, bench_stacking.py times K = 1 and K = 2 on the CPU and writes its JSON."""
    out = tmp_path / "out"
    out.mkdir()
    env = {**_script_env(out), "GPU_CHECK_DRY_RUN": "1"}
    r = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    log = r.stdout + r.stderr
    assert "CPU dry run" in (out / "device.txt").read_text(), log
    assert "torch" in (out / "device.txt").read_text()
    gpu_tests = (out / "gpu_tests.txt").read_text()
    assert re.match(r"s+ +\[100%\]", gpu_tests), gpu_tests  # every GPU test collected, and skipped
    step = (out / "step.txt").read_text()
    assert "needs a CUDA GPU" in step and "usage:" not in step, step  # arguments parsed, then the CUDA check
    stacking = yaml.safe_load((out / "stacking.json").read_text())
    assert stacking["k"] == 2 and stacking["ratio"] > 0 and stacking["device"], stacking
    assert r.returncode == 0, log


def _stand_in(src: str, path: Path, **changes) -> Path:
    """A copy of a shipped spec with sections changed (tiny sizes), written to ``path``."""
    spec = yaml.safe_load((ROOT / "configs" / src).read_text())
    for section, values in changes.items():
        spec[section] = {**spec[section], **values} if isinstance(values, dict) else values
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    parse_spec(spec)  # valid, or the test's fault
    return path


@pytest.mark.slow
def test_study_gpu_dry_run_on_cpu(tmp_path):
    """STUDY_SPEC=... FIG1_SPEC=... bash benchmarks/study_gpu.sh 400, with tiny stand-ins for
    configs/study.yaml and configs/figure1.yaml (the CPU configs, shrunk): both sweeps finish
    and every report the script writes is there. Run in a scratch directory (the script trains
    into ./runs), with the repository's benchmarks/ and src/ linked in."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("benchmarks", "src"):
        (work / name).symlink_to(ROOT / name)
    study = _stand_in(
        "study-cpu.yaml",
        tmp_path / "study.yaml",
        name="study-dry",
        model={"widths": [32, 64]},
        train={"steps": 24, "batch_size": 4, "warmup": 4, "eval_interval": 12, "eval_tokens": 1024, "log_interval": 4},
        grid={"eta": {"log2": [-8, -6], "points": 2}, "wd": {"log2": [-2, 0], "points": 2}},
        rules=["sqrt-wd", "const-wd"],
    )
    fig1 = _stand_in(
        "figure1-cpu.yaml",
        tmp_path / "fig1.yaml",
        name="figure1-dry",
        model={"widths": [32]},
        train={"steps": 24, "batch_size": 4, "warmup": 4, "eval_interval": 12, "eval_tokens": 1024, "log_interval": 4},
    )
    out = tmp_path / "out"
    out.mkdir()
    env = {**_script_env(out), "STUDY_SPEC": str(study), "FIG1_SPEC": str(fig1)}
    r = subprocess.run(
        ["bash", "benchmarks/study_gpu.sh", "400"], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    log = r.stdout + r.stderr
    sweep = (out / "study-sweep.txt").read_text()
    assert "failed" not in sweep.lower() or " 0 failed" in sweep.lower(), sweep[-2000:]
    for run in ("study-dry", "figure1-dry"):
        results = out / "runs" / run / "results.csv"
        assert results.exists(), (run, log[-2000:])
        import pandas as pd

        table = pd.read_csv(results)
        assert set(table["status"]) <= {"done", "diverged"} and len(table), (run, table["status"].value_counts())
        assert (out / f"{run}-diagnose.txt").read_text().strip(), run
        assert (out / "runs" / run / "report.md").exists(), run
        assert not (out / "runs" / run / "checkpoints").exists()
    assert "regret" in (out / "study-transfer.txt").read_text().lower(), (out / "study-transfer.txt").read_text()
    assert (out / "study-status.txt").read_text().strip()
    assert "torch" in (out / "device.txt").read_text()
