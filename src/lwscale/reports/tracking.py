"""Experiment trackers, optional: TensorBoard and Weights & Biases (the spec's ``logging`` block).

Both are written from the run directory once a sweep ends, never from the training step: each
cell's curves come from its record (``curves.train``, ``curves.val``: [step, tokens, loss]) and
the final table from results.csv (docs/records.md). So they cost the training nothing, and a
run trained without them can be logged by sweeping it again (nothing is retrained).

- TensorBoard (``logging: {tensorboard: true}``, needs ``pip install tensorboard``): one
  event directory per sweep point, ``<run>/tensorboard/<rule>/w<width>/eta<eta>_wd<wd>/seed<seed>``,
  with the scalars ``loss/train`` and ``loss/val`` by step, and ``<run>/tensorboard/summary``
  with the loss tables as text. A point already logged (same cell, same record) is skipped on
  the next sweep; the summary is rewritten.
- Weights & Biases (``logging: {wandb: {project: P}}``, needs ``pip install wandb``): one W&B run
  per sweep, offline unless ``mode: online`` (files under ``<run>/wandb``; ``wandb sync`` uploads
  them), holding the spec as its config, a ``curves`` table (one row per point of every
  finished cell's curves), the ``results`` table, and each rule and width's best loss in its summary.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
from pathlib import Path
from typing import Callable

import pandas as pd

from lwscale.core.errors import UserError
from lwscale.core.files import atomic_write_text
from lwscale.core.log import quiet
from lwscale.reports.run import load_run, panel
from lwscale.reports.tables import argmin, loss_tab
from lwscale.rundir.record import CellRecord
from lwscale.rundir.store import Store

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def wanted(spec) -> list[str]:
    """The trackers the spec's logging block turns on."""
    lg = spec.logging
    return [name for name, on in (("tensorboard", lg.tensorboard), ("wandb", lg.wandb is not None)) if on]


def check_trackers(spec) -> None:
    """A one-line UserError, before any training, when a tracker the spec asks for is not installed."""
    missing = [n for n in wanted(spec) if importlib.util.find_spec(PACKAGES[n]) is None]
    if missing:
        raise UserError(
            f"logging.{missing[0]} needs the {PACKAGES[missing[0]]} package: pip install "
            f"{' '.join(PACKAGES[m] for m in missing)} (or lwscale[tracking]), or turn it off in the spec"
        )


def _curves(root: Path, cell_id: str) -> tuple[CellRecord | None, list, list]:
    rec = Store(root).read_record(str(cell_id))
    curves = (rec.result.curves if rec is not None and rec.result is not None else None) or {}
    return rec, curves.get("train") or [], curves.get("val") or []


def _finished(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"].isin(["done", "diverged"])]


def _point_dir(r) -> str:
    return f"{r.rule}/w{int(r.width)}/eta{r.eta:.6g}_wd{r.wd:.6g}/seed{int(r.seed)}"


def log_tensorboard(spec, root: Path, table: pd.DataFrame, tables_md: str) -> int:
    """Write the TensorBoard files (module docstring); returns how many points were logged now."""
    from torch.utils.tensorboard import SummaryWriter

    base = root / "tensorboard"
    done_path = base / "logged.json"
    try:
        logged = json.loads(done_path.read_text())
    except (OSError, ValueError):
        logged = {}
    n = 0
    for r in _finished(table).itertuples():
        rec, train, val = _curves(root, r.cell_id)
        key = _point_dir(r)
        stamp = f"{r.cell_id}:{rec.finished_at}" if rec is not None else None
        if stamp is None or logged.get(key) == stamp:
            continue
        shutil.rmtree(base / key, ignore_errors=True)  # a retrained cell: its curves anew, not appended
        with SummaryWriter(str(base / key)) as w:
            for step, _tokens, loss in train:
                if loss is not None and math.isfinite(loss):
                    w.add_scalar("loss/train", loss, int(step))
            for step, _tokens, loss in val:
                if loss is not None and math.isfinite(loss):
                    w.add_scalar("loss/val", loss, int(step))
            w.add_text(
                "cell",
                f"cell {r.cell_id}: {r.status}; rule {r.rule}, width {int(r.width)}, "
                f"eta {r.eta:.6g}, wd {r.wd:.6g}, seed {int(r.seed)}",
            )
        logged[key] = stamp
        n += 1
    shutil.rmtree(base / "summary", ignore_errors=True)
    with SummaryWriter(str(base / "summary")) as w:
        w.add_text("loss tables", tables_md)
    atomic_write_text(done_path, json.dumps(logged, indent=1, sort_keys=True))
    return n


def log_wandb(spec, root: Path, table: pd.DataFrame, best: dict[str, float]) -> Path | None:
    """One W&B run for the sweep (module docstring); returns its local directory."""
    import wandb

    cfg = spec.logging.wandb
    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(
        project=cfg.project,
        entity=cfg.entity,
        mode=cfg.mode,
        dir=str(root),
        name=spec.name,
        group=spec.name,
        job_type="sweep",
        config=spec.model_dump(mode="json"),
        reinit="create_new",
    )
    try:
        rows = []
        for r in _finished(table).itertuples():
            _, train, val = _curves(root, r.cell_id)
            for split, curve in (("train", train), ("val", val)):
                rows += [
                    [
                        r.rule,
                        int(r.width),
                        float(r.eta),
                        float(r.wd),
                        int(r.seed),
                        str(r.cell_id),
                        split,
                        int(step),
                        int(tokens),
                        float(loss),
                    ]
                    for step, tokens, loss in curve
                    if loss is not None
                ]
        run.log(
            {
                "curves": wandb.Table(
                    columns=["rule", "width", "eta", "wd", "seed", "cell_id", "split", "step", "tokens", "loss"],
                    data=rows,
                ),
                "results": wandb.Table(dataframe=table.astype(object).where(table.notna(), None)),
            }
        )
        for k, v in best.items():
            run.summary[k] = v
        return Path(run.dir).parent
    finally:
        run.finish()


def log_trackers(spec, root: Path, log: Callable[[str], None] = quiet) -> None:
    """After a sweep: log the run to every tracker its spec's logging block names."""
    names = wanted(spec)
    if not names:
        return
    run = load_run(root)
    tables, best = [], {}
    for rule in run.rules:
        for width, steps in run.panels():  # each training length on its own
            sub = panel(run.stats, rule, width, steps)
            if sub.empty:
                continue
            where = run.where(width, steps)
            tables += [
                f"### {rule}, {where}",
                "",
                loss_tab(run.stats, rule, width, steps if run.multi_horizon else None).markdown(),
                "",
            ]
            b = argmin(sub)
            if b is not None:
                best[f"best_loss/{rule}/w{width}" + (f"/s{steps}" if run.multi_horizon else "")] = float(b["loss"])
    if "tensorboard" in names:
        n = log_tensorboard(spec, run.root, run.df, "\n".join(tables))
        log(
            f"tensorboard: {n} sweep points logged now, in {run.root / 'tensorboard'} "
            f"(tensorboard --logdir {run.root / 'tensorboard'})"
        )
    if "wandb" in names:
        where = log_wandb(spec, run.root, run.df, best)
        log(
            f"wandb ({spec.logging.wandb.mode}): the curves and results of {run.root.name} in {where}"
            + (f" (upload: wandb sync {where})" if spec.logging.wandb.mode == "offline" else "")
        )
