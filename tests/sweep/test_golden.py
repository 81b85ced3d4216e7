"""A golden loss trajectory for the tiny CPU sweep (torchtitan-style): catches any change
to the numerics of the model, optimizer, data or schedule. After an intended change,
regenerate with LWSCALE_UPDATE_GOLDEN=1 and say why in the commit."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "tiny_sweep.json"


def test_golden_trajectory(tiny_run):
    df = pd.read_csv(tiny_run.store.root / "results.csv")
    row = df[(df.rule == "sqrt-wd") & (df.width == 64) & (df.eta == 2**-5) & (df.wd == 1.0) & (df.seed == 0)]
    rec = json.loads((tiny_run.store.root / "cells" / row.cell_id.iloc[0] / "record.json").read_text())
    got = {"train": rec["curves"]["train"], "val": rec["curves"]["val"], "final_val_loss": rec["final_val_loss"]}
    if os.environ.get("LWSCALE_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1))
    want = json.loads(GOLDEN.read_text())
    assert [p[:2] for p in got["val"]] == [p[:2] for p in want["val"]]
    assert [p[2] for p in got["val"]] == pytest.approx([p[2] for p in want["val"]], rel=1e-4)
    assert [p[2] for p in got["train"]] == pytest.approx([p[2] for p in want["train"]], rel=1e-4)
