"""Fixtures shared across test packages: hand-made run directories in the documented schema
(docs/records.md), for report tests (spec.yaml, results.csv and minimal cell records with validation
curves; nothing trains), and the small sweep spec and run-directory readers of the fault tests."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import pandas as pd
from conftest import TINY_SPEC

from lwscale.rundir.store import COLUMNS
from lwscale.sweep.spec import dump_spec, parse_spec

BASE_SPEC = {
    "model": {"depth": 1, "head_dim": 16, "seq_len": 32},
    "data": {"source": "sotu", "tokenizer": "bytes"},
    "train": {"steps": 20, "batch_size": 4, "warmup": 2},
}


def rows_for(rule, width, etas, wds, seeds, loss, status=lambda e, w: "done", base_width=32, steps=None):
    """One results row per grid point and seed; ``loss(eta, wd, seed)`` gives its value.
    ``steps``: the rows' training length (a run of several horizons; else the spec's)."""
    out = []
    for e in etas:
        for w in wds:
            for s in seeds:
                st = status(e, w)
                val = loss(e, w, s) if st == "done" else math.nan
                out.append(
                    {
                        "rule": rule,
                        "width": width,
                        "m": width / base_width,
                        "eta": e,
                        "wd": w,
                        "seed": s,
                        "status": st,
                        "final_val_loss": val,
                        "initial_loss": 5.55,
                        "reason": None if st == "done" else f"{st} in a fixture",
                        **({"steps": steps} if steps is not None else {}),
                    }
                )
    return out


def make_run(
    root: Path,
    rows: list[dict],
    widths,
    rules,
    etas,
    wds,
    seeds=(0,),
    name=None,
    records=True,
    train: dict | None = None,
) -> Path:
    """``train``: more keys of the spec's train section, e.g. {"steps": [20, 80]} for horizons."""
    root = Path(root)
    spec = parse_spec(
        {
            **BASE_SPEC,
            "name": name or root.name,
            "model": {**BASE_SPEC["model"], "widths": list(widths)},
            "train": {**BASE_SPEC["train"], "seeds": list(seeds), **(train or {})},
            "grid": {"eta": list(etas), "wd": list(wds)},
            "rules": list(rules),
        }
    )
    (root / "cells").mkdir(parents=True, exist_ok=True)
    (root / "spec.yaml").write_text(dump_spec(spec))
    for r in rows:
        key = f"{r['rule'] if r['width'] != 32 else 'base'}|{r['width']}|{r['eta']}|{r['wd']}|{r['seed']}"
        key += f"|{r['steps']}" if r.get("steps") is not None else ""
        r.setdefault("cell_id", hashlib.sha256(key.encode()).hexdigest()[:16])
        if records:
            loss = r["final_val_loss"]
            end = loss if math.isfinite(loss) else None
            rec = {
                "schema": 1,
                "id": r["cell_id"],
                "status": r["status"],
                "curves": {"val": [[0, 0, 5.55], [10, 1280, (end or 9.0) + 0.4], [20, 2560, end]]},
            }
            d = root / "cells" / r["cell_id"]
            d.mkdir(exist_ok=True)
            (d / "record.json").write_text(json.dumps(rec))
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in COLUMNS]
    df.reindex(columns=COLUMNS + extra).to_csv(root / "results.csv", index=False)
    return root


# ---- the fault tests' small sweep ------------------------------------------------------------
def small_spec(widths=(32,), etas=(2**-7, 2**-5), seeds=(0,), steps=6, **runner) -> dict:
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(rules=["sqrt-wd"], grid={"eta": list(etas), "wd": [0.1]})
    spec["model"]["widths"] = list(widths)
    spec["train"].update(seeds=list(seeds), steps=steps, cells_per_stack=1, eval_tokens=256)
    if runner:
        spec["runner"] = runner
    return spec


def records(run: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in (run / "cells").glob("*/record.json")}


def leftovers(run: Path) -> list:
    return [p for p in run.rglob("*") if p.name.endswith(".tmp")]
