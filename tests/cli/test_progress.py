"""The sweep's progress bar reads speed and MFU with the records' arithmetic (training/perf.py)."""

import re
import time

import pytest
from conftest import TINY_SPEC

from lwscale.cli.progress import RichProgress
from lwscale.sweep.plan import make_plan, model_flops_per_token
from lwscale.sweep.spec import parse_spec


def test_the_bar_shows_tokens_per_second_per_cell_and_mfu_against_the_peak(monkeypatch):
    import lwscale.training.perf as perf

    spec = parse_spec(TINY_SPEC)
    stack = make_plan(spec).cells[:2]
    monkeypatch.setattr(perf, "peak_flops", lambda device, precision: 1e9)  # a device with a known peak
    bar = RichProgress(spec)
    bar.start(len(stack))
    bar.stack_started(stack)
    bar.last = (0, time.perf_counter() - 2.0)  # the last update was 2 s ago
    bar.step(4, 20, [3.5, float("nan")])
    task = bar.bars.tasks[bar.current]
    bar.stack_finished(stack)
    tokens_per_step = spec.train.batch_size * spec.model.seq_len
    rate = 4 / 2.0
    tok, pct = re.fullmatch(r"([\d,]+) tok/s/cell, MFU (\d+)%", task.fields["speed"]).groups()
    assert float(tok.replace(",", "")) == pytest.approx(rate * tokens_per_step, rel=0.02)  # ~2 s, measured
    mfu = rate * tokens_per_step * model_flops_per_token(spec, stack[0].model) * 2 / 1e9
    assert int(pct) == pytest.approx(100 * mfu, abs=1.5) and "loss 3.500" in task.description
