"""The run directory: a frozen spec, one atomically written record per cell, and results.csv.

    <out_dir>/<name>/
        spec.yaml               the resolved spec of the latest run (every default written out)
        plan.json               its cells (id, width, steps, FLOPs per token), for readers that
                                must not plan: planning a model.factory spec imports user code
        cells/<cell_id>/record.json
        results.csv             rebuilt from the records after every stack; never appended to

Each record is written to a temporary file and renamed into place, so a crash or a kill
loses only the cells in flight, and a half-written record is never read as a result: an
unreadable record is reported and its cell retrained. The record schema and the
results.csv columns are a versioned contract, documented in docs/records.md.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import yaml

from lwscale.core.errors import UserError
from lwscale.core.files import atomic_write, atomic_write_text, json_default, sha256_file, strict_json
from lwscale.core.version import __version__
from lwscale.model.classes import ParamInfo
from lwscale.rundir.record import FINISHED, STATUSES, CellRecord
from lwscale.sweep.plan import (
    Label,
    Plan,
    classes_key,
    make_plan,
    model_flops_per_token,
    param_classes,
    result_settings,
)
from lwscale.sweep.spec import Spec, SpecError, dump_spec, load_spec
from lwscale.training.result import SPECTRA_FILE, CellResult
from lwscale.training.result import summary as diagnostics_summary

# results.csv columns, in order (docs/records.md)
COLUMNS = [
    "rule",
    "width",
    "m",
    "eta",
    "wd",
    "seed",
    "cell_id",
    "status",
    "final_val_loss",
    "final_train_loss",
    "initial_loss",
    "diverged_step",
    "lr_matrix",
    "wd_matrix",
    "lr_vector",
    "tau_matrix",
    "timescales",
    "steps",
    "tokens",
    "tokens_per_s",
    "wall_s",
    "stack_size",
    "device",
    "lwscale_version",
    "reason",
    "tflops",
    "mfu",
    "sigma_max",
    "gain",
]


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.cells_dir = self.root / "cells"
        self.warnings: list[str] = []
        self._own_plan: tuple[Spec, list] | None = None  # the run's own spec and its labels
        self.listed: dict[str, int | None] = {}  # cell id -> record_stamp() when pending() listed it

    # ---- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, spec: Spec, out_dir: str | Path | None = None, update_spec: bool = True) -> Store:
        """Open (or create) the run directory for ``spec``, refusing a spec that would alter
        cells the directory already holds. ``spec.yaml`` becomes ``spec`` unless
        ``update_spec`` is False (for derived runs, such as ``transfer --train``, that add
        cells to a run without replacing the spec the user swept)."""
        root = cls.root_for(spec, out_dir)
        store = cls(root)
        frozen = root / "spec.yaml"
        store.check_spec(spec)
        try:
            root.mkdir(parents=True, exist_ok=True)
            store.cells_dir.mkdir(exist_ok=True)
            if update_spec or not frozen.exists():
                atomic_write_text(frozen, dump_spec(spec))
        except OSError as exc:
            raise UserError(f"cannot write to the run directory {root}: {exc.strerror or exc}") from None
        return store

    @staticmethod
    def root_for(spec: Spec, out_dir: str | Path | None = None) -> Path:
        """The run directory of ``spec``: <out_dir>/<name>, ``out_dir`` defaulting to the spec's."""
        base = Path(out_dir if out_dir is not None else spec.out_dir)
        if spec.name in ("", ".", "..") or Path(spec.name).name != spec.name:
            raise UserError(
                f"the run name {spec.name!r} would put the run directory outside {base}; "
                "choose another 'name' in the spec"
            )
        return base / spec.name

    def check_spec(self, spec: Spec) -> None:
        """Refuse ``spec`` if its result settings differ from the run's own spec.yaml (they would
        change the cells it holds); a run without spec.yaml takes any spec. Reads only."""
        if not (self.root / "spec.yaml").exists():
            return
        before, after = result_settings(self.read_spec()), result_settings(spec)
        if before != after:
            changed = ", ".join(_diff(before, after)) or "settings"
            raise UserError(
                f"{self.root} was made with different settings ({changed}); they would change the cells it "
                f"already holds. Start a new run: change 'name' in the spec, pass --out DIR, or delete {self.root}"
            )

    def read_spec(self) -> Spec:
        path = self.root / "spec.yaml"
        if not path.exists():
            raise UserError(f"{self.root} is not an lwscale run directory (no spec.yaml)")
        try:
            return load_spec(path)  # one line for malformed YAML, as for a spec given to sweep
        except (SpecError, yaml.YAMLError) as exc:
            raise UserError(f"cannot read the run's spec: {exc}") from None

    # ---- the plan, for readers -------------------------------------------------------------
    def write_plan_index(self, plan: Plan) -> None:
        """Write plan.json: the cells of ``plan`` (the run's own spec's), the digest of the
        spec.yaml they were planned from, and the parameter classes of each model config.
        ``lwscale status`` reads it instead of planning, and the reports read the classes instead
        of building models (a user's model: instead of running its code)."""
        cells = [
            {
                "id": c.id,
                "width": c.width,
                "steps": c.steps,
                "flops_per_token": model_flops_per_token(plan.spec, c.model),
            }
            for c in plan.cells
        ]
        index = {"spec_sha256": sha256_file(self.root / "spec.yaml"), "cells": cells}
        configs = {classes_key(c.model): c.model for c in plan.cells}  # classified here, where models are built anyway
        index["factory_classes" if plan.spec.model.factory else "classes"] = {
            k: [asdict(i) for i in param_classes(plan.spec, cfg)] for k, cfg in sorted(configs.items())
        }
        text = json.dumps(index, default=json_default)
        atomic_write_text(self.root / "plan.json", text)

    def read_classes(self, spec: Spec) -> dict | None:
        """The parameter classes per model config that plan.json recorded (``plan.param_classes``'
        ``recorded``; ``spec``: the run's own). A factory run's always ({} when unreadable: the
        reports then say to sweep); the built-in model's only while plan.json was planned from the
        spec.yaml now in the run, else None (the reports classify the model themselves)."""
        try:
            data = json.loads((self.root / "plan.json").read_bytes().decode("utf-8"))
            if not spec.model.factory and (
                "classes" not in data or data["spec_sha256"] != sha256_file(self.root / "spec.yaml")
            ):
                return None
            return {
                k: [
                    ParamInfo(
                        **{
                            **i,
                            "shape": tuple(i["shape"]),
                            "base_shape": tuple(i["base_shape"]),
                            "inf_dims": tuple(i["inf_dims"]),
                        }
                    )
                    for i in infos
                ]
                for k, infos in data.get("factory_classes" if spec.model.factory else "classes", {}).items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return {} if spec.model.factory else None

    def read_plan_index(self) -> list[dict] | None:
        """The cells of plan.json if it was planned from the spec.yaml now in the run, else None."""
        try:
            data = json.loads((self.root / "plan.json").read_bytes().decode("utf-8"))
            if data["spec_sha256"] != sha256_file(self.root / "spec.yaml"):
                return None
            return [
                {
                    "id": str(c["id"]),
                    "width": int(c["width"]),
                    "steps": int(c["steps"]),
                    "flops_per_token": float(c["flops_per_token"]),
                }
                for c in data["cells"]
            ]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return None

    # ---- records ------------------------------------------------------------------------
    def record_path(self, cell_id: str) -> Path:
        return self.cells_dir / cell_id / "record.json"

    def write_record(self, record: CellRecord, spectra: dict | None = None) -> None:
        """Write ``record``, after the cell's ``spectra`` (diagnostics' singular values) if any:
        a record implies its spectra. A new record's provenance is stamped now; a rewritten one
        keeps what its file held (a null git_commit stays null), stamping only keys it lacked."""
        if spectra:
            atomic_write(
                self.record_path(record.id).parent / SPECTRA_FILE,
                lambda f: np.savez_compressed(f, **spectra),
                binary=True,
            )
        data = record.to_json()
        stamp = {
            "lwscale_version": __version__,
            "git_commit": git_commit(),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        data.update({k: v for k, v in stamp.items() if record.read_keys is None or k not in record.read_keys})
        text = json.dumps(strict_json(data), default=json_default, indent=1)
        atomic_write_text(self.record_path(record.id), text)

    def add_labels(self, cell_id: str, labels: list[dict]) -> None:
        """Add sweep points a finished cell also serves to its record (another rule's point that
        maps to the same physical cell, found done by ``transfer --train``), so that every
        later table keeps their rows. A cell without a record is left alone."""
        rec = self.read_record(cell_id)
        if rec is None:
            return
        new = [lab for lab in labels if lab not in rec.labels]
        if new:
            rec.labels = rec.labels + new
            self.write_record(rec)

    def record_stamp(self, cell_id: str) -> int | None:
        """The state of a cell's record: its modification time (ns), or None when it has none."""
        try:
            return self.record_path(cell_id).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def read_record(self, cell_id: str) -> CellRecord | None:
        """The record of a cell, or None if there is none. A corrupt or half-written record
        is reported (``self.warnings``) and treated as missing, so its cell is retrained."""
        path = self.record_path(cell_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:  # a directory in its place, an unreadable file
            self.warnings.append(f"unreadable record {path} ({exc.strerror or exc}); the cell will be retrained")
            return None
        try:
            rec = json.loads(raw.decode("utf-8"))  # not UTF-8: a UnicodeDecodeError, a ValueError
            if not isinstance(rec, dict) or rec.get("id") != cell_id or rec.get("status") not in STATUSES:
                raise ValueError("missing id or status")
            return CellRecord.from_json(rec)
        except (ValueError, RecursionError) as exc:
            why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc).splitlines()[0][:200]
            self.warnings.append(f"corrupt record {path} ({why}); the cell will be retrained")
            return None

    def records(self) -> dict[str, CellRecord]:
        out = {}
        if self.cells_dir.exists():
            for d in sorted(self.cells_dir.iterdir()):
                rec = self.read_record(d.name) if d.is_dir() else None
                if rec is not None:
                    out[d.name] = rec
        return out

    def pending(self, plan: Plan, retry_failed: bool = False) -> list:
        """Cells of the plan without a finished record (failed ones too with retry_failed).
        The state of each listed cell's record is kept in ``self.listed``: a worker trains a
        cell only if its record is still in that state once the worker holds its claim."""
        todo, versions = [], set()
        for cell in plan.cells:
            stamp = self.record_stamp(cell.id)  # before the read: a record that changes after it is skipped
            rec = self.read_record(cell.id)
            if rec is None or (retry_failed and rec.status == "failed"):
                todo.append(cell)
                self.listed[cell.id] = stamp
            elif rec.status in FINISHED:
                versions.add(rec.lwscale_version)
        other = versions - {__version__}
        if other:
            self.warnings.append(
                f"some finished cells were trained by lwscale {', '.join(sorted(map(str, other)))} "
                f"(this is {__version__}); they are kept, not retrained"
            )
        return todo

    # ---- the table ----------------------------------------------------------------------
    def rebuild_table(self, plan: Plan) -> pd.DataFrame:
        """Write results.csv: one row per sweep point of the plan (pending where no record),
        and of the run's own spec when ``plan`` is a derived one (``transfer --train``'s), plus
        every point an existing record was trained for (an earlier spec's, a rule added later),
        each once. A cell one rule trained keeps the labels a later grid gives it under another."""
        records = self.records()
        labels = list(plan.labels) + self._own_labels(plan)
        rows, seen = [], set()
        for label, cid in labels:
            key = (label.rule, label.width, label.steps, label.eta, label.wd, label.seed)
            if key not in seen:
                seen.add(key)
                rows.append(_row(label, cid, records.get(cid)))
        for cid, rec in records.items():
            for lab in rec.labels:
                view = Label(**{"steps": rec.steps, **lab})  # labels before horizons: the record's steps
                key = (view.rule, view.width, view.steps, view.eta, view.wd, view.seed)
                if key not in seen:
                    seen.add(key)
                    rows.append(_row(view, cid, rec))
        df = pd.DataFrame(rows, columns=COLUMNS)
        df = df.sort_values(["rule", "width", "steps", "wd", "eta", "seed"], kind="stable").reset_index(drop=True)
        atomic_write_text(self.root / "results.csv", df.to_csv(index=False))
        return df

    def _own_labels(self, plan: Plan) -> list:
        """The sweep points of the run's own spec.yaml when ``plan`` is another (derived) one;
        planned once per Store. An unreadable spec.yaml costs a warning, never the table."""
        if not (self.root / "spec.yaml").exists():
            return []
        try:
            own = self.read_spec()
        except UserError as exc:
            msg = f"results.csv lists only this process's cells: {exc}"
            if msg not in self.warnings:
                self.warnings.append(msg)
            return []
        if _label_fields(own) == _label_fields(plan.spec):  # a worker's device or K override: same points
            return []
        if self._own_plan is None or self._own_plan[0] != own:
            self._own_plan = (own, make_plan(own).labels)
        return self._own_plan[1]


def _label_fields(spec: Spec) -> tuple:
    """What a plan's sweep points (rule, width, steps, eta, wd, seed) follow from."""
    return (
        spec.grid,
        spec.rules,
        spec.model.widths,
        spec.train.seeds,
        spec.horizons(),
        spec.train.steps_by_width,
        spec.base_horizon(),
    )


def _row(label: Label, cid: str, rec: CellRecord | None) -> dict:
    row = {c: None for c in COLUMNS}
    row.update(
        rule=label.rule,
        width=label.width,
        eta=label.eta,
        wd=label.wd,
        seed=label.seed,
        steps=label.steps,
        cell_id=cid,
        status="pending",
    )
    if rec is None:
        return row
    mat = [g for g in rec.groups if g["cls"] == "matrix"]
    vec = [g for g in rec.groups if g["cls"] == "vector"]
    model, res = rec.model, rec.result or CellResult()
    row.update(
        status=rec.status,
        m=model.get("width", label.width) / model.get("base_width", label.width) if model else None,
        final_val_loss=res.final_val_loss,
        final_train_loss=res.final_train_loss,
        initial_loss=res.initial_loss,
        diverged_step=res.diverged_step,
        lr_matrix=mat[0]["lr"] if mat else None,
        wd_matrix=mat[0]["wd"] if mat else None,
        lr_vector=vec[0]["lr"] if vec else None,
        tau_matrix=mat[0]["tau"] if mat else None,
        timescales=min((g["timescales"] for g in mat), default=None),
        steps=rec.steps,
        tokens=res.tokens,
        tokens_per_s=res.tokens_per_s,
        wall_s=res.wall_s,
        stack_size=res.stack_size,
        device=res.device,
        lwscale_version=rec.lwscale_version,
        reason=rec.reason,
        tflops=res.tflops,
        mfu=res.mfu,
        **diagnostics_summary(res.diagnostics),
    )
    return row


def _diff(a: dict, b: dict, prefix: str = "") -> Iterable[str]:
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            yield from _diff(x, y, f"{prefix}{k}.")
        elif x != y:
            yield f"{prefix}{k}: {x} -> {y}"


def find_run(path: str | Path | None, runs_dir: str | Path = "runs") -> Path:
    """RUN_DIR as given, or the most recently modified run under ./runs."""
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise UserError(f"run directory not found: {p}")
        if not (p / "spec.yaml").exists():
            raise UserError(f"{p} is not an lwscale run directory (no spec.yaml)")
        return p
    base = Path(runs_dir)
    runs = [d for d in base.iterdir() if (d / "spec.yaml").exists()] if base.is_dir() else []
    if not runs:
        raise UserError(f"no runs found under ./{base}; pass RUN_DIR")
    return max(
        runs,
        key=lambda d: (
            (d / "results.csv").stat().st_mtime if (d / "results.csv").exists() else (d / "spec.yaml").stat().st_mtime
        ),
    )
