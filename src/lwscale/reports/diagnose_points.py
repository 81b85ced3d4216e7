"""The points diagnose and its figures read: one row per (cell, matrix type) with sigma_max, the type's
own group (lr, wd) and the equilibrium scale S of the weight-norm recurrence over the cell's lr
schedule (derivation: docs/diagnostics.md), and the selections over them (steady, collapsed, done).
Read from the run directory only; nothing is trained."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lwscale.core.errors import UserError
from lwscale.model.classes import GroupKey, group_hparams
from lwscale.model.config import MATRIX_TYPES, matrix_type, user_types
from lwscale.reports.run import Run
from lwscale.reports.tables import finished
from lwscale.science.rules import STEADY_TIMESCALES, get_rule
from lwscale.science.schedule import lr_factor
from lwscale.sweep.plan import model_config, param_classes

COLLAPSED = 0.01  # sigma_max/S below this share of its type's median at that width: ~0
FFN_TYPES = ("gate", "up", "down")


# ---- the long table: one row per (sweep point, matrix type) ----------------------------------
def ordered_types(present) -> list[str]:
    """The matrix types in ``present``: the built-in model's q ... down in their order, then
    a user model's types (lwscale.model.config.user_types) in the order first seen."""
    seen = list(dict.fromkeys(present))
    return [t for t in MATRIX_TYPES if t in seen] + [t for t in seen if t not in MATRIX_TYPES]


def load_points(run: Run, records: dict) -> pd.DataFrame:
    """The run's results joined with each record's diagnostics (``records``: ``Store.records()``):
    one row per sweep point and matrix type with ``sigma`` (block-averaged end sigma_max) and
    ``gain_end`` (last eval's gain), that type's own optimizer group (``with_group_hparams``)
    and its equilibrium scale (``with_scales``). A user error when no cell has diagnostics.
    Only the grid's seeds: the cells ``transfer --train`` adds on fresh seeds sit at a few
    points only, and in the fits they would weigh those points more than the rest."""
    df = run.df[run.df["seed"].isin(run.grid_seeds)]
    rows = []
    for r in df.itertuples(index=False):
        rec = records.get(r.cell_id)
        diag = rec.diagnostics if rec is not None else {}
        sig = (diag.get("sigma_max") or {}).get("by_type") or {}
        gains = (diag.get("gain") or {}).get("by_type") or {}
        for t in ordered_types(list(sig) + list(gains)):
            if t in sig or t in gains:
                g = gains.get(t) or []
                rows.append(
                    {**r._asdict(), "type": t, "sigma": sig.get(t, math.nan), "gain_end": g[-1] if g else math.nan}
                )
    if not rows:
        raise UserError(f"{run.root}: no cell has diagnostics (train.diagnostics was off, or nothing finished yet)")
    cols = list(df.columns) + ["type", "sigma", "gain_end"]
    points = with_group_hparams(pd.DataFrame(rows, columns=cols), run.spec, records, run.classes)
    return with_scales(points, run.spec)


# ---- each matrix type's own optimizer group ------------------------------------------------------
def type_mults(
    spec, rule: str, width: int, vocab_size: int | None = None, classes: dict | None = None
) -> dict[str, float]:
    """{matrix type: width multiplier (fan-in ratio)} of the spec's model at ``width`` under
    ``rule``: the classes a sweep's optimizer groups use (``plan.param_classes``: the
    built-in model or the spec's ``model.factory``), named as the recorder names types
    (``config.matrix_type``, or ``config.user_types`` for a user's model). A type whose
    matrices have different multipliers maps to NaN (its block mean has no one lr and wd)."""
    mats = [
        i
        for i in param_classes(spec, model_config(spec, width, get_rule(rule), vocab_size), classes)
        if i.cls == "matrix"
    ]
    names = user_types([i.name for i in mats]) if spec.model.factory else {i.name: matrix_type(i.name) for i in mats}
    mults: dict[str, set[float]] = {}
    for i in mats:
        if names.get(i.name) is not None:
            mults.setdefault(names[i.name], set()).add(i.width_mult)
    return {t: next(iter(ms)) if len(ms) == 1 else math.nan for t, ms in mults.items()}


def with_group_hparams(
    points: pd.DataFrame, spec, records: dict | None = None, classes: dict | None = None
) -> pd.DataFrame:
    """``points`` with each row's matrix type's own optimizer group: ``m_group`` (its width
    multiplier, its fan-in ratio; ``type_mults``), ``lr_group`` (peak lr) and ``wd_group``
    (coupled wd), by ``classes.group_hparams`` from the row's rule and base (eta, wd) and the
    spec's wd_mode and vector_lr_mult: the arithmetic of the sweep itself. A user's model
    whose matrices have different fan-in ratios gets different values per type, where
    results.csv's ``lr_matrix``/``wd_matrix`` hold the first matrix group's only. The
    vocabulary size comes from the cells' records where they have one (no data is read).
    When the classes cannot be rebuilt (a factory no longer importable), every type falls
    back to ``lr_matrix`` and ``wd_matrix``, and ``attrs["group_note"]`` says so."""
    out = points.copy()
    m, lr, wd = (np.full(len(out), math.nan) for _ in range(3))
    vocab = {}
    for r in out.drop_duplicates("cell_id").itertuples():
        rec = (records or {}).get(r.cell_id)
        v = rec.model.get("vocab_size") if rec is not None else None
        if v is not None:
            vocab.setdefault((r.rule, r.width), int(v))
    try:
        for (rule, width), sub in out.groupby(["rule", "width"]):
            mults = type_mults(spec, rule, int(width), vocab.get((rule, width)), classes)
            for (eta, lam, t), idx in sub.groupby(["eta", "wd", "type"]).groups.items():
                k = out.index.get_indexer(idx)
                mult = mults.get(t, math.nan)
                if math.isfinite(mult):
                    m[k] = mult
                    lr[k], wd[k] = group_hparams(
                        GroupKey("matrix", mult),
                        rule,
                        float(eta),
                        float(lam),
                        spec.optimizer.wd_mode,
                        spec.model.vector_lr_mult,
                    )
    except Exception as exc:  # noqa: BLE001 - a report must not die on a model it cannot rebuild
        note = (
            f"per-group lr and wd: the model's classes could not be rebuilt ({exc}); "
            "every matrix type uses results.csv's lr_matrix and wd_matrix (the first matrix group's)"
        )
        m = out["m"].to_numpy(float) if "m" in out else np.full(len(out), math.nan)
        lr, wd = out["lr_matrix"].to_numpy(float), out["wd_matrix"].to_numpy(float)
    else:
        note = None
    out = out.assign(m_group=m, lr_group=lr, wd_group=wd)
    if note:
        out.attrs["group_note"] = note
    return out


# ---- the equilibrium scale S of the weight-norm recurrence (docs/diagnostics.md) ----------------
def schedule_factors(
    steps: int, warmup: int, schedule: str, min_ratio: float = 0.1, decay_frac: float = 0.2
) -> np.ndarray:
    """lr_t / lr_peak at every optimizer step of a run (``schedule.lr_factor``)."""
    return np.array([lr_factor(t, steps, warmup, schedule, min_ratio, decay_frac) for t in range(steps)], float)


def equilibrium_scale(lr, wd, factors) -> np.ndarray:
    """S = sqrt(sum_t lr_t^2 prod_{s>t} (1 - lr_s*wd)^2), lr_t = lr * factors[t], for arrays of
    peak lr and coupled wd: the end-of-run weight norm of the recurrence
    ||W||^2 <- (1 - lr_t*wd)^2 ||W||^2 + lr_t^2 C per unit update size C, from ||W|| = 0.
    With a constant lr it tends to sqrt(lr / (wd (2 - lr*wd))) ~ sqrt(lr / 2wd). NaN where
    lr*wd*factor reaches 1 (a decay that flips the weights' sign each step)."""
    lr, wd = (np.atleast_1d(np.asarray(v, float)) for v in np.broadcast_arrays(lr, wd))
    f = np.asarray(factors, float)
    out = np.full(lr.shape, math.nan)
    flat_lr, flat_wd, flat = lr.reshape(-1), wd.reshape(-1), out.reshape(-1)
    chunk = max(1, 2_000_000 // max(1, len(f)))
    for i in range(0, len(flat_lr), chunk):
        a, w = flat_lr[i : i + chunk, None], flat_wd[i : i + chunk, None]
        keep = 1.0 - a * w * f[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            log_keep = np.cumsum(2.0 * np.log(keep), axis=1)  # log prod_{s<=t} (1 - lr_s wd)^2
            s2 = ((a * f[None, :]) ** 2 * np.exp(log_keep[:, -1:] - log_keep)).sum(1)
        bad = (keep <= 0).any(1) | ~np.isfinite(s2)
        flat[i : i + chunk] = np.where(bad, math.nan, np.sqrt(s2))
    return out


def with_scales(points: pd.DataFrame, spec) -> pd.DataFrame:
    """``points`` (with ``lr_group``/``wd_group``, ``with_group_hparams``) with each row's
    ``eq_scale`` S (``equilibrium_scale`` over the row's schedule: the spec's schedule,
    min_lr_ratio and decay_frac, the row's ``steps`` and the spec's warmup for them),
    ``schedule_factor`` S / sqrt(lr/(2 wd)) (1 in steady state at a constant lr; under a
    decay the share of the peak's equilibrium the run ended at), and ``timescales_group``
    sum_t lr_t * wd of the row's own group."""
    t = spec.train
    out = points.copy()
    steps = (out["steps"] if "steps" in out else pd.Series(np.nan, index=out.index)).astype(float)
    steps = steps.where(steps.notna(), out["width"].map(lambda w: float(spec.steps_at(int(w)))))
    lr, wd = out["lr_group"].to_numpy(float), out["wd_group"].to_numpy(float)
    scale, ts = np.full(len(out), math.nan), np.full(len(out), math.nan)
    for n in np.unique(steps.to_numpy()):
        k = np.flatnonzero(steps.to_numpy() == n)
        f = schedule_factors(int(n), spec.warmup_steps(int(n)), t.schedule, t.min_lr_ratio, t.decay_frac)
        pairs, inv = np.unique(np.stack([lr[k], wd[k]], 1), axis=0, return_inverse=True)
        scale[k] = equilibrium_scale(pairs[:, 0], pairs[:, 1], f)[inv.reshape(-1)]
        ts[k] = lr[k] * wd[k] * f.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = scale / np.sqrt(lr / (2 * wd))
    return out.assign(eq_scale=scale, schedule_factor=factor, timescales_group=ts)


def steady(points: pd.DataFrame, min_timescales: float = STEADY_TIMESCALES) -> pd.DataFrame:
    """The rows of finished (``done``) cells that completed at least ``min_timescales``: of
    the row's own matrix group (``timescales_group``) where the frame has it, else of the
    cell (``timescales``, its slowest matrix group)."""
    ts = points["timescales_group"] if "timescales_group" in points else points["timescales"]
    return points[finished(points, "sigma") & (ts >= min_timescales)]


def collapsed(points: pd.DataFrame) -> pd.Series:
    """Rows whose matrix weight decay drove to (numerically) zero: sigma_max / S (the
    equilibrium scale, ``with_scales``) below COLLAPSED of its median over the type's cells
    at that width. A SwiGLU FFN does this at very many timescales (gate and up shrink
    together, their product's gradient with them). Such a matrix left the steady state
    sigma_max ~ S holds in, and its log would swamp a fit."""
    # against the law's own scale, so a grid's spread of lr/wd does not move the cut
    scaled = points["sigma"] / points["eq_scale"]
    med = scaled.groupby([points["width"], points["type"]]).transform("median")
    return scaled < COLLAPSED * med


def unique_cells(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (physical cell, type): rules share their base-width cells."""
    return points.drop_duplicates(["cell_id", "type"])


def done_cells(points: pd.DataFrame) -> pd.DataFrame:
    """The rows of the cells that trained to the end (status ``done``), whatever their
    sigma_max and gain: a missing one is skipped where it is averaged."""
    return points[points["status"] == "done"]


def rows_at(points: pd.DataFrame, rule: str, eta: float, wd: float) -> pd.DataFrame:
    """The rows of ``rule`` at base (eta, wd), every width (values from the table itself)."""
    return points[(points["rule"] == rule) & (points["eta"] == eta) & (points["wd"] == wd)]
