"""Property-based spec fuzzing: any YAML document gives a one-line SpecError or a valid plan."""
import copy
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TINY_SPEC
from lwscale.plan import make_plan
from lwscale.spec import SpecError, load_spec

# LWSCALE_FUZZ_EXAMPLES=1000 for a longer hunt than CI's
FUZZ = settings(max_examples=int(os.environ.get("LWSCALE_FUZZ_EXAMPLES", 60)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**12, 2**40, 10**6, 1e300, -1e-300, 2**31]),  # sizes that could hang or overflow
    st.sampled_from(["auto", "cpu", "cuda:1", "sqrt-wd", "custom", "slurm", "gpus", "bytes", "", "-1", "1e-3"]),
    st.text(max_size=8),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                      max_leaves=10)

# values of the right kind, often valid: so that mutated specs also reach the planner
plausible = st.one_of(
    st.integers(0, 4), st.sampled_from([16, 32, 64, 0.5, 1.0, 2.75, 1e-3, 0.95]), st.booleans(), st.none(),
    st.sampled_from(["auto", "cpu", "local", "gpus", "slurm", "cosine", "wsd", "constant", "fp32", "vector",
                     "matrix", "coupled", "independent", "sotu", "synthetic", "bytes", "sqrt-wd", "gpu"]),
    st.lists(st.sampled_from([16, 32, 64, 0.1, 1.0, 2**-6]), min_size=1, max_size=3),
    st.fixed_dictionaries({"log2": st.tuples(st.integers(-8, 0), st.integers(-8, 0)), "points": st.integers(1, 3)}),
)

# every key path a spec knows (and a few it does not), to mutate a valid spec one value at a time
PATHS = [
    ("name",), ("out_dir",), ("rules",), ("grid",), ("grid", "eta"), ("grid", "wd"), ("grid", "pairs"),
    ("model",), ("model", "widths"), ("model", "base_width"), ("model", "depth"), ("model", "head_dim"),
    ("model", "ffn_mult"), ("model", "seq_len"), ("model", "init_std"), ("model", "unembed_class"),
    ("model", "attn_scale"), ("model", "vector_lr_mult"), ("model", "rope_theta"),
    ("data", "source"), ("data", "tokenizer"), ("data", "vocab_size"), ("data", "teacher"),
    ("data", "teacher", "width"), ("train", "steps"), ("train", "tokens"), ("train", "steps_width_exponent"),
    ("train", "batch_size"), ("train", "warmup"), ("train", "schedule"), ("train", "min_lr_ratio"),
    ("train", "decay_frac"), ("train", "grad_clip"), ("train", "seeds"), ("train", "cells_per_stack"),
    ("train", "device"), ("train", "precision"), ("train", "compile"), ("train", "diverge_factor"),
    ("optimizer", "betas"), ("optimizer", "eps"), ("optimizer", "wd_mode"),
    ("runner",), ("runner", "kind"), ("runner", "workers"), ("runner", "checkpoint_minutes"),
    ("runner", "keep_checkpoints"), ("runner", "claim_timeout_minutes"), ("runner", "slurm"),
    ("runner", "slurm", "partition"), ("runner", "slurm", "time_minutes"), ("runner", "slurm", "gpus_per_task"),
    ("runner", "slurm", "mem_gb"), ("runner", "slurm", "extra_sbatch"), ("runner", "slurm", "setup"),
    ("colour",), ("model", "colour"), ("runner", "colour"),
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
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@FUZZ
@given(st.text(max_size=80))
def test_random_text(text):
    _check(text)


@FUZZ
@given(values)
def test_random_documents(doc):
    _check(_dump(doc))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(values, plausible, plausible)), min_size=1, max_size=3))
def test_mutated_valid_spec(mutations):
    doc = copy.deepcopy(TINY_SPEC)
    doc["model"]["widths"] = [32]  # keep each plan small
    for path, value in mutations:
        node = doc
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    _check(_dump(doc))
