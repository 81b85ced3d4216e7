"""Property-based spec fuzzing: any YAML document gives a one-line SpecError or a valid plan."""

import copy
import os
import tempfile
from pathlib import Path

import yaml
from conftest import TINY_SPEC
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lwscale.sweep.plan import make_plan
from lwscale.sweep.spec import SpecError, load_spec

# LWSCALE_FUZZ_EXAMPLES=1000 for a longer hunt than CI's
FUZZ = settings(
    max_examples=int(os.environ.get("LWSCALE_FUZZ_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**12, 2**40, 10**6, 1e300, -1e-300, 2**31]),  # sizes that could hang or overflow
    st.sampled_from(["auto", "cpu", "cuda:1", "sqrt-wd", "custom", "slurm", "gpus", "bytes", "", "-1", "1e-3"]),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=10,
)

# values of the right kind, often valid: so that mutated specs also reach the planner
plausible = st.one_of(
    st.integers(0, 4),
    st.sampled_from([16, 32, 64, 0.5, 1.0, 2.75, 1e-3, 0.95]),
    st.booleans(),
    st.none(),
    st.sampled_from(
        [
            "auto",
            "cpu",
            "local",
            "gpus",
            "slurm",
            "cosine",
            "wsd",
            "constant",
            "fp32",
            "vector",
            "matrix",
            "coupled",
            "independent",
            "sotu",
            "synthetic",
            "bytes",
            "sqrt-wd",
            "gpu",
        ]
    ),
    st.lists(st.sampled_from([16, 32, 64, 0.1, 1.0, 2**-6]), min_size=1, max_size=3),
    st.fixed_dictionaries({"log2": st.tuples(st.integers(-8, 0), st.integers(-8, 0)), "points": st.integers(1, 3)}),
)

# every key path a spec knows (and a few it does not), to mutate a valid spec one value at a time
PATHS = [
    ("name",),
    ("out_dir",),
    ("rules",),
    ("grid",),
    ("grid", "eta"),
    ("grid", "wd"),
    ("grid", "pairs"),
    ("model",),
    ("model", "widths"),
    ("model", "base_width"),
    ("model", "depth"),
    ("model", "head_dim"),
    ("model", "ffn_mult"),
    ("model", "seq_len"),
    ("model", "init_std"),
    ("model", "unembed_class"),
    ("model", "attn_scale"),
    ("model", "vector_lr_mult"),
    ("model", "rope_theta"),
    ("data", "source"),
    ("data", "tokenizer"),
    ("data", "vocab_size"),
    ("data", "teacher"),
    ("data", "teacher", "width"),
    ("train", "steps"),
    ("train", "tokens"),
    ("train", "steps_width_exponent"),
    ("train", "batch_size"),
    ("train", "warmup"),
    ("train", "schedule"),
    ("train", "min_lr_ratio"),
    ("train", "decay_frac"),
    ("train", "grad_clip"),
    ("train", "seeds"),
    ("train", "cells_per_stack"),
    ("train", "device"),
    ("train", "precision"),
    ("train", "compile"),
    ("train", "diverge_factor"),
    ("optimizer", "betas"),
    ("optimizer", "eps"),
    ("optimizer", "wd_mode"),
    ("runner",),
    ("runner", "kind"),
    ("runner", "workers"),
    ("runner", "checkpoint_minutes"),
    ("runner", "keep_checkpoints"),
    ("runner", "claim_timeout_minutes"),
    ("runner", "slurm"),
    ("runner", "slurm", "partition"),
    ("runner", "slurm", "time_minutes"),
    ("runner", "slurm", "gpus_per_task"),
    ("runner", "slurm", "mem_gb"),
    ("runner", "slurm", "extra_sbatch"),
    ("runner", "slurm", "setup"),
    ("colour",),
    ("model", "colour"),
    ("runner", "colour"),
]


def _check(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            spec = load_spec(path)
        except SpecError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg and "Traceback" not in msg and str(path) in msg, msg
            return
    plan = make_plan(spec)  # a valid spec must plan: any other exception fails the test
    assert plan.cells and all(c.steps >= 1 and c.id for c in plan.cells)
    assert {lab.width for lab, _ in plan.labels} == set(spec.model.widths)


def _dump(doc) -> str:
    return yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False, allow_unicode=True)


@FUZZ
@given(st.text(max_size=80))
def test_random_text(text):
    _check(text)


@FUZZ
@given(values)
def test_random_documents(doc):
    _check(_dump(doc))


def _set(doc: dict, mutations) -> dict:
    """``doc`` with each (path, value) of ``mutations`` set, making missing sections."""
    for path, value in mutations:
        node = doc
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    return doc


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(values, plausible, plausible)), min_size=1, max_size=3))
def test_mutated_valid_spec(mutations):
    doc = copy.deepcopy(TINY_SPEC)
    doc["model"]["widths"] = [32]  # keep each plan small
    _set(doc, mutations)
    _check(_dump(doc))


# ---- the hostile hunt: 2,000 specs of deep nesting, huge and infinite numbers ----------------------
# Validation only (nothing trains): each spec must give one SpecError line, or a spec the sweep can
# set up: a plan, its printed table, finite numbers, a heartbeat a thread can wait on, seeds the
# generators take, and batch shapes whose sizes fit (checked on the meta device: nothing allocated).
import functools  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lwscale.sweep import plan as plan_module  # noqa: E402

HUNT = settings(
    max_examples=int(os.environ.get("LWSCALE_FUZZ_HUNT", 2000)),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

BASE = {
    "name": "hunt",
    "model": {"widths": [32], "depth": 1, "head_dim": 16, "seq_len": 16},
    "data": {"source": "sotu", "tokenizer": "bytes"},
    "train": {"steps": 10, "batch_size": 2},
    "grid": {"eta": [0.01], "wd": [0.1]},
    "rules": ["sqrt-wd"],
}

DEEP = "__deep_{}__"  # a placeholder for n nested YAML lists: safe_dump itself would recurse on them
huge_ints = st.one_of(
    st.sampled_from([2**31, 2**32, 2**53 + 1, 2**63, 2**64, 10**30, -(2**63), 10**400]), st.integers(-(2**70), 2**70)
)
huge_floats = st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -1e308, 1e300, 5e-324, 2.0**1023, 1100.0, -1100.0])
nested = st.integers(1, 2000).map(DEEP.format)
hostile = st.one_of(
    huge_ints,
    huge_floats,
    nested,
    st.fixed_dictionaries(
        {
            "log2": st.tuples(
                st.one_of(huge_floats, huge_ints, st.integers(-8, 0)),
                st.one_of(huge_floats, huge_ints, st.integers(-8, 0)),
            ),
            "points": st.one_of(st.integers(1, 3), huge_ints),
        }
    ),
    st.lists(st.one_of(huge_floats, huge_ints, st.sampled_from([0.01, 0.1, 32])), min_size=1, max_size=3),
)
LEAVES = [p for p in PATHS if p not in (("grid",), ("model",), ("runner",), ("runner", "slurm"), ("data", "teacher"))]
LEAVES += [
    ("train", "eval_tokens"),
    ("train", "eval_interval"),
    ("train", "log_interval"),
    ("data", "val_every"),
    ("data", "teacher", "seed"),
    ("data", "teacher", "depth"),
    ("data", "teacher", "head_dim"),
    ("data", "teacher", "entropy"),
    ("runner", "slurm", "cpus_per_task"),
    ("runner", "slurm", "max_parallel"),
]


_param_classes = plan_module.param_classes


@functools.cache
def _classes(cfg, unembed: str):
    return _param_classes(type("S", (), {"model": type("M", (), {"factory": None, "unembed_class": unembed})})(), cfg)


def _finite(x, where="spec") -> None:
    if isinstance(x, float):
        assert math.isfinite(x), f"{where} = {x} passed validation"
    elif isinstance(x, dict):
        for k, v in x.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(x, (list, tuple)):
        for v in x:
            _finite(v, where)


def _set_up(spec) -> None:
    """What a sweep computes from a valid spec before it trains, without data or training."""
    import io

    from rich.console import Console

    from lwscale.reports.tables import plan_table, timescale_warning

    _finite(spec.model_dump())
    plan = make_plan(spec)
    assert plan.cells and all(c.steps >= 1 and 0 <= c.warmup for c in plan.cells)
    Console(file=io.StringIO(), width=200).print(plan_table(plan))
    timescale_warning(plan)
    assert spec.runner.claim_timeout_minutes * 60 / 4 <= threading.TIMEOUT_MAX  # the heartbeat thread's wait
    for seed in spec.train.seeds + [spec.data.teacher.seed + 7919]:
        torch.Generator().manual_seed(seed)
        np.random.default_rng([int(seed) & 0xFFFFFFFF, 0])
    t, m = spec.train, spec.model
    n_val = -(-max(1, t.eval_tokens // m.seq_len) // t.batch_size) * t.batch_size
    with torch.device("meta"):  # shapes only: an overflow raises here
        torch.empty(len(spec.train.seeds), t.batch_size, m.seq_len + 1, dtype=torch.long)
        torch.empty(n_val, m.seq_len + 1, dtype=torch.long)
    for c in plan.cells:
        assert c.model.vocab_size >= 2 and all(math.isfinite(g.lr) and math.isfinite(g.wd) for g in c.groups)


@pytest.fixture(scope="module")
def hunt_file(tmp_path_factory):
    return tmp_path_factory.mktemp("hunt") / "s.yaml"


@HUNT
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(LEAVES), st.one_of(hostile, hostile, plausible)), min_size=1, max_size=3
    )
)
def test_hostile_specs_give_one_line_or_a_spec_a_sweep_can_set_up(hunt_file, mutations):
    doc = copy.deepcopy(BASE)
    _set(doc, mutations)
    text = _dump(doc)
    text = re.sub(r"'?__deep_(\d+)__'?", lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)
    hunt_file.write_text(text, encoding="utf-8")
    try:
        spec = load_spec(hunt_file)
    except SpecError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and str(hunt_file) in msg, msg
        return
    with pytest.MonkeyPatch.context() as mp:  # the model's parameter classes once per config: the hunt's speed
        mp.setattr(plan_module, "param_classes", lambda spec_, cfg: _classes(cfg, spec_.model.unembed_class))
        _set_up(spec)


@pytest.mark.parametrize(
    "text, msg",
    [
        ("grid: {eta: {log2: [0, 1100], points: 2}, wd: [0.1]}", "grid.eta"),
        ("grid: {eta: [0.01], wd: [0.1]}\ntrain: {warmup: .inf}", "train.warmup"),
        ("grid: {eta: [0.01], wd: [0.1]}\nmodel: {widths: " + "[" * 500 + "]" * 500 + "}", "nested"),
        ("grid: {eta: [0.01], wd: [0.1]}\nrunner: {claim_timeout_minutes: .inf}", "runner.claim_timeout_minutes"),
        ("grid: {eta: [0.01], wd: [0.1]}\nrunner: {claim_timeout_minutes: 1.0e+300}", "runner.claim_timeout_minutes"),
        ("grid: {eta: [1.0e+400], wd: [0.1]}", "grid.eta"),
        ("grid: {eta: [" + "1" * 400 + "], wd: [0.1]}", "grid.eta"),
        ("grid: {eta: [0.01], wd: [0.1]}\ntrain: {eval_tokens: " + "9" * 30 + "}", "train.eval_tokens"),
        ("grid: {eta: [0.01], wd: [0.1]}\ntrain: {seeds: [" + str(2**64) + "]}", "seeds must be below"),
        ("grid: {eta: [0.01], wd: [0.1]}\nmodel: {base_width: " + "9" * 400 + "}", "model.base_width"),
    ],
)
def test_hostile_values_the_users_met_are_one_line(tmp_path, text, msg):
    """Each of these gave a traceback (OverflowError, RecursionError, a heartbeat thread's
    OverflowError) instead of one line; the CLI now exits 2 with one line."""
    from conftest import run_cli

    path = tmp_path / "s.yaml"
    path.write_text(text)
    code, out, err = run_cli(["sweep", path, "--dry-run"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in out + err, (code, out, err)
    assert msg in err, err
