"""Proxy -> target transfer: the proxy's optimum, each rule's (lr, wd) at both widths and
training lengths, and, where the run has target cells, regret, shift and the sigma_max ratio
(docs/transfer.md).

All (eta, lambda) are base coordinates: the values at the base width and the base horizon.
A rule maps them to per-class (lr, wd) at any width and length (a horizon exponent scales wd
by (S/S0)**-h, docs/science.md §2), so the transferred point of a rule at the target
is the same base (eta, lambda); under every muP rule it is a measured target cell of the
grid when the run trained the target at that length. The proxy and the target are each a
(width, steps): ``proxy_steps`` and ``target_steps`` pick the lengths of a run of several.

- regret (pooled) = L_target(rule's transferred point) - the best target loss over all
  target cells of the run, whatever their rule (they are distinct physical (lr, wd)).
  The per-rule regret compares with the rule's own target grid only.
- shift = target optimum - proxy optimum in log2 base coordinates: (d log2 eta, d log2 lam),
  and d log2(eta*lam) (across an iso-eta*lambda ridge) and d log2(eta/lam) (along it).
- differences within 2 standard errors of the seed noise are ties.

Select on one noise, evaluate on another: every optimum (the proxy's, the best target cell
of any rule, each rule's own) is picked on the grid's seeds. Picking the lowest of many noisy
cells biases its loss low, so a regret read on those same seeds is biased high. With
``transfer --train --seeds N`` the competitors are trained on N fresh seeds and every loss,
regret and rank is read there. Either way, differences are paired seed by seed over the seeds
both sides finished, and each number carries the seeds it used.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lwscale.core.errors import UserError
from lwscale.core.files import atomic_write_text, strict_json
from lwscale.model.classes import group_hparams, group_keys
from lwscale.reports.gate import gate
from lwscale.reports.run import Run, at_point, log2, panel, seed_losses
from lwscale.reports.tables import argmin, cell_stats, finished, mean_se, paired
from lwscale.reports.transfer_tables import seeds_text
from lwscale.science.rules import RuleError, get_rule, timescale
from lwscale.sweep.plan import model_config, param_classes

TIE_SIGMAS = 2.0


@dataclass
class Optimum:
    eta: float
    wd: float
    source: str  # "grid argmin", "refined", "given"
    eta_se: float | None = None  # refined: log2 spread over seeds
    wd_se: float | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ClassRow:
    group: str  # e.g. "matrix (m 1->4)", "matrix (m 1->4, S x4)": class, width multiplier (and length)
    cls: str
    proxy_lr: float
    proxy_wd: float
    proxy_tau: float
    target_lr: float
    target_wd: float
    target_tau: float


# ---- reading the grid -------------------------------------------------------------------
def edge_warnings(sub: pd.DataFrame, eta: float, wd: float, what: str) -> list[str]:
    """Which way to widen the grid when (eta, wd) sits on its edge."""
    out = []
    etas, wds = sorted(sub["eta"].unique()), sorted(sub["wd"].unique())
    for name, v, axis in (("lr", eta, etas), ("wd", wd, wds)):
        if len(axis) < 2:
            continue
        if v <= axis[0]:
            out.append(f"{what} lies on the grid's lowest {name} ({v:.3g}): extend the {name} axis below it")
        elif v >= axis[-1]:
            out.append(f"{what} lies on the grid's highest {name} ({v:.3g}): extend the {name} axis above it")
    return out


def local_quadratic(sub: pd.DataFrame, centre: pd.Series):
    """A quadratic in (log2 eta, log2 wd) fitted to the 3x3 cells around ``centre``: (x, y, its
    coefficients, its residuals), or None with fewer than 6 cells or a rank-deficient design."""
    eta, wd, loss = (sub[k].to_numpy(float) for k in ("eta", "wd", "loss"))
    ok = np.array(finished(sub), dtype=bool) & (wd > 0)
    etas, wds = np.unique(eta[ok]), np.unique(wd[ok])  # sorted
    i, j = np.flatnonzero(etas == centre["eta"]), np.flatnonzero(wds == centre["wd"])
    if centre["wd"] <= 0 or not len(i) or not len(j):
        return None
    i, j = int(i[0]), int(j[0])
    near = ok & np.isin(eta, etas[max(i - 1, 0) : i + 2]) & np.isin(wd, wds[max(j - 1, 0) : j + 2])
    if near.sum() < 6:
        return None
    x, y, z = log2(eta[near]), log2(wd[near]), loss[near]
    A = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    if np.linalg.matrix_rank(A) < 6:
        return None
    c, *_ = np.linalg.lstsq(A, z, rcond=None)
    return x, y, c, z - A @ c


def quadratic_vertex(sub: pd.DataFrame, centre: pd.Series) -> tuple[float, float] | None:
    """Vertex of a quadratic in (log2 eta, log2 wd) fitted to the 3x3 cells around ``centre``,
    clipped to that neighbourhood; None when the fit is not a bowl."""
    fit = local_quadratic(sub, centre)
    if fit is None:
        return None
    x, y, c, _ = fit
    H = np.array([[2 * c[3], c[4]], [c[4], 2 * c[5]]])
    if np.any(np.linalg.eigvalsh(H) <= 0):
        return None
    vx, vy = np.linalg.solve(H, -c[1:3])
    vx = float(np.clip(vx, x.min(), x.max()))
    vy = float(np.clip(vy, y.min(), y.max()))
    return vx, vy


def proxy_optimum(run: Run, rule: str, width: int, refined: bool = False, steps: int | None = None) -> Optimum:
    """The rule's optimum at ``width`` (and ``steps``, when given): the grid argmin of the seed
    means, or the vertex of a quadratic around it (``refined``)."""
    sub = panel(run.stats, rule, width, steps)
    best = argmin(sub)
    if best is None:
        at = f" trained {steps:,} steps" if steps is not None and run.multi_horizon else ""
        raise UserError(
            f"no finished cells at the proxy width {width}{at} for rule {rule}; sweep it first or pass --eta and --wd"
        )
    opt = Optimum(float(best["eta"]), float(best["wd"]), "grid argmin")
    opt.warnings = edge_warnings(sub, opt.eta, opt.wd, f"the {rule} proxy optimum ({run.where(width, steps)})")
    if refined:
        v = quadratic_vertex(sub, best)
        if v is None:
            opt.warnings.append(
                f"{rule}: the 3x3 cells around the proxy argmin do not form a bowl; using the grid argmin"
            )
        else:
            opt = Optimum(2.0 ** v[0], 2.0 ** v[1], "refined", warnings=opt.warnings)
            per_seed = []
            for _, d in panel(run.df[run.df["seed"].isin(run.grid_seeds)], rule, width, steps).groupby("seed"):
                s = cell_stats(d)
                b = argmin(s)
                pv = quadratic_vertex(s, b) if b is not None else None
                if pv is not None:
                    per_seed.append(pv)
            if len(per_seed) > 1:
                opt.eta_se, opt.wd_se = (mean_se(v)[1] for v in zip(*per_seed))
    return opt


# ---- the rule arithmetic ----------------------------------------------------------------
def class_hparams_at(
    spec, rule: str, width: int, eta: float, wd: float, steps: int | None = None, classes: dict | None = None
) -> list[tuple[float, str, float, float, float]]:
    """(width multiplier, class, lr, coupled wd, tau) of every parameter group of the spec's model at
    ``width`` trained ``steps`` steps (default: the base horizon) under ``rule``, from base (eta, wd):
    the same classes and arithmetic as a sweep."""
    r = get_rule(rule)
    rho = 1.0 if steps is None else spec.horizon_ratio(width, steps)
    keys = group_keys(param_classes(spec, model_config(spec, width, r), classes))  # the built-in or a factory model
    out = []
    for key in sorted(keys, key=lambda k: (k.cls, k.width_mult)):
        lr, cwd = group_hparams(key, r, eta, wd, spec.optimizer.wd_mode, spec.model.vector_lr_mult, rho)
        out.append((key.width_mult, key.cls, lr, cwd, timescale(lr, cwd)))
    return out


def class_rows(
    spec,
    rule: str,
    proxy: int,
    target: int,
    eta: float,
    wd: float,
    proxy_steps: int | None = None,
    target_steps: int | None = None,
    classes: dict | None = None,
) -> list[ClassRow]:
    """Per parameter group, the (lr, wd, tau) at the proxy and at the target; a group's name
    says its width multipliers, and the length ratio when the two train different lengths."""
    p = class_hparams_at(spec, rule, proxy, eta, wd, proxy_steps, classes)
    t = class_hparams_at(spec, rule, target, eta, wd, target_steps, classes)
    longer = (
        f", S x{target_steps / proxy_steps:.3g}"
        if None not in (proxy_steps, target_steps) and proxy_steps != target_steps
        else ""
    )
    return [
        ClassRow(tc if tc == "vector" else f"{tc} (m {pm:g}->{tm:g}{longer})", tc, plr, pwd, ptau, tlr, twd, ttau)
        for (pm, _, plr, pwd, ptau), (tm, tc, tlr, twd, ttau) in zip(p, t)
    ]


# ---- metrics ----------------------------------------------------------------------------
def _tie(diff: float, noise: float) -> bool | None:
    """True when ``diff`` is within TIE_SIGMAS of its standard error; None without noise
    (one seed). A paired se of 0 (every seed moved both cells alike) ties only equal losses."""
    if not math.isfinite(noise):
        return None
    return bool(abs(diff) <= TIE_SIGMAS * noise)


def seed_diff(a: dict, b: dict) -> tuple[float, float, list[int]]:
    """loss(a) - loss(b) paired seed by seed over the seeds both cells finished, its standard
    error (NaN below 2 seeds) and those seeds. The same seed gives both cells the same batches
    and init, so what a seed does to both cancels. Means over different seed sets are never
    subtracted: with no shared seed the difference is NaN."""
    common = sorted(k for k in a if k in b and math.isfinite(a[k]) and math.isfinite(b[k]))
    diff, se, _ = paired({k: a[k] for k in common}, {k: b[k] for k in common})
    return diff, se, common


def shift(p_eta: float, p_wd: float, t_eta: float, t_wd: float) -> dict:
    with np.errstate(invalid="ignore"):  # wd = 0 has no log
        de, dw = float(log2(t_eta) - log2(p_eta)), float(log2(t_wd) - log2(p_wd))
    de, dw = (v if math.isfinite(v) else math.nan for v in (de, dw))
    return {"d_log2_eta": de, "d_log2_wd": dw, "d_log2_eta_x_wd": de + dw, "d_log2_eta_over_wd": de - dw}


def _shift_se(run: Run, rule: str, proxy: int, target: int, proxy_steps: int, target_steps: int) -> dict:
    """Standard errors of the shift over the grid's seeds (each seed's own argmins), when > 1."""
    per = []
    d = run.df[(run.df["rule"] == rule) & run.df["seed"].isin(run.grid_seeds)]
    for _seed, ds in d.groupby("seed"):
        p = argmin(cell_stats(ds[(ds["width"] == proxy) & (ds["steps"] == proxy_steps)]))
        t = argmin(cell_stats(ds[(ds["width"] == target) & (ds["steps"] == target_steps)]))
        if p is not None and t is not None:
            per.append(shift(p["eta"], p["wd"], t["eta"], t["wd"]))
    if len(per) < 2:
        return {}
    return {f"{k}_se": mean_se([p[k] for p in per])[1] for k in per[0]}


def _sigma(run: Run, rule: str, width: int, eta: float, wd: float, steps: int) -> float:
    d = run.df[run.df["seed"].isin(run.grid_seeds)]
    return mean_se(d.loc[at_point(d, rule, width, eta, wd, steps) & finished(d, "sigma_max"), "sigma_max"])[0]


def _losses(ev: pd.DataFrame, cell: pd.Series | dict, width: int) -> dict[int, float]:
    return seed_losses(ev, cell["rule"], width, float(cell["eta"]), float(cell["wd"]), int(cell["steps"]))


def target_metrics(
    run: Run,
    ev: pd.DataFrame,
    rule: str,
    proxy: int,
    target: int,
    opt: Optimum,
    pooled: pd.Series | None,
    own: pd.Series | None,
    proxy_steps: int,
    target_steps: int,
    fresh: bool = False,
) -> dict:
    """Regret (pooled and per rule), shift and sigma_max ratio of one rule at the target (width
    ``target`` trained ``target_steps``). ``pooled``: the best target cell of any rule, ``own``:
    the best of the rule's own grid, both picked on the grid's seeds (None when no target cell
    finished: then only the loss at the transferred point, if trained). Losses and regrets are
    read from ``ev``, the results rows of the evaluation seeds, paired seed by seed."""
    out: dict = {}
    if pooled is not None:
        out.update(
            best_loss_pooled=mean_se(list(_losses(ev, pooled, target).values()))[0],
            best_loss_pooled_rule=pooled["rule"],
            best_loss_pooled_eta=float(pooled["eta"]),
            best_loss_pooled_wd=float(pooled["wd"]),
        )
    mine = seed_losses(ev, rule, target, opt.eta, opt.wd, target_steps)
    if pooled is None and not mine:
        return out
    statuses = ev.loc[at_point(ev, rule, target, opt.eta, opt.wd, target_steps), "status"]
    if mine:
        loss, se, n = mean_se(list(mine.values()))
        out.update(target_status="done", target_n=n, target_loss=loss, target_loss_se=se, target_seeds=mine)
        for key, best in (("pooled", pooled), ("rule", own)):
            if best is None:
                continue
            diff, d_se, seeds = seed_diff(mine, _losses(ev, best, target))
            out.update(
                {
                    f"regret_{key}": diff,
                    f"regret_{key}_se": d_se,
                    f"regret_{key}_paired": len(seeds),
                    f"regret_{key}_seeds": seeds,
                    f"tie_{key}": _tie(diff, d_se),
                }
            )
    elif len(statuses):
        worst = [s for s in ("failed", "diverged", "running", "pending") if (statuses == s).any()]
        out.update(target_status=worst[0] if worst else "done", target_n=0)
    elif fresh:
        out["target_status"] = "not trained on these seeds"
    else:
        out["target_status"] = "not in the grid"
    if own is not None:
        out.update(target_opt_eta=float(own["eta"]), target_opt_wd=float(own["wd"]))
        out.update(shift(opt.eta, opt.wd, own["eta"], own["wd"]))
        if opt.source == "grid argmin":
            out.update(_shift_se(run, rule, proxy, target, proxy_steps, target_steps))
    if run.has_sigma():
        sp = _sigma(run, rule, proxy, opt.eta, opt.wd, proxy_steps)
        st = _sigma(run, rule, target, opt.eta, opt.wd, target_steps)
        if np.isfinite(sp) and np.isfinite(st) and sp > 0:
            out["sigma_max_ratio"] = st / sp
    return out


def rank(seeds: dict[str, dict[int, float]]) -> list[dict]:
    """Rules ordered by their loss at the transferred point (``seeds``: rule -> {seed: loss}),
    on the seeds every ranked rule finished, so each mean and each gap reads one seed set. A
    gap is paired seed by seed and a tie with the best when within the seed noise."""
    have = {r: s for r, s in seeds.items() if s}
    if not have:
        return []
    common = sorted(set.intersection(*(set(s) for s in have.values())))
    if not common:
        return []
    stats = {r: mean_se([s[k] for k in common]) for r, s in have.items()}
    order = sorted(have, key=lambda r: stats[r][0])
    top = order[0]
    out = []
    for i, r in enumerate(order):
        gap, gap_se, _ = seed_diff(*({k: have[x][k] for k in common} for x in (r, top))) if i else (0.0, math.nan, [])
        out.append(
            {
                "rule": r,
                "loss": stats[r][0],
                "se": stats[r][1],
                "rank": i + 1,
                "gap": gap,
                "gap_se": gap_se,
                "paired": len(common),
                "seeds": common,
                "tie_with_best": i > 0 and bool(_tie(gap, gap_se)),
            }
        )
    return out


# ---- the whole comparison ---------------------------------------------------------------
def check_rules(run: Run, rules: list[str] | None) -> list[str]:
    have = run.rules
    if not rules:
        return have
    out = []
    for r in rules:
        try:
            label = get_rule(r).label()
        except RuleError:
            label = r
        if label not in have:
            raise UserError(f"unknown rule {r!r}: this run has {', '.join(have)}")
        out.append(label)
    return out


def check_width(run: Run, width: int, what: str) -> None:
    if width not in run.widths:
        raise UserError(f"{what} width {width} is not in the run (widths: {', '.join(map(str, run.widths))})")


def horizons(run: Run, proxy: int, target: int, proxy_steps: int | None, target_steps: int | None) -> tuple[int, int]:
    """The proxy's and the target's training lengths. The proxy's must be one the run trained it
    at (default: the base horizon, else its shortest); the target's may be any length (default:
    the longest the run trained the target at): without cells there, the rules' arithmetic
    still says what (lr, wd) to use."""

    def lengths(w: int) -> str:
        return ", ".join(f"{s:,}" for s in run.steps_at(w))

    if proxy_steps is None:
        proxy_steps = run.default_steps(proxy)
    elif proxy_steps not in run.steps_at(proxy):
        raise UserError(
            f"the run has no cells at the proxy width {proxy} trained {proxy_steps:,} steps "
            f"(it trained that width {lengths(proxy)} steps)"
        )
    if target_steps is None:
        target_steps = run.default_steps(target, longest=True)
    elif target_steps < 1:
        raise UserError(f"--target-steps must be at least 1, got {target_steps}")
    if proxy > target or (proxy == target and proxy_steps == target_steps):
        raise UserError(
            f"the proxy width ({proxy}) must be narrower than the target width ({target})"
            + (", or train fewer steps" if run.multi_horizon else "")
        )
    return int(proxy_steps), int(target_steps)


def competitors(result: dict) -> dict[str, set[tuple[float, float]]]:
    """The target cells a fresh-seed evaluation trains, per rule: each rule's transferred point,
    the best target cell of any rule and each rule's own best target cell (as picked on the
    grid's seeds). Cells that coincide (the same physical lr and wd) train once."""
    out: dict[str, set[tuple[float, float]]] = {}
    for e in result["rules"]:
        out.setdefault(e["rule"], set()).add((e["eta"], e["wd"]))
        if "target_opt_eta" in e:
            out[e["rule"]].add((e["target_opt_eta"], e["target_opt_wd"]))
        if "best_loss_pooled_rule" in e:
            out.setdefault(e["best_loss_pooled_rule"], set()).add((e["best_loss_pooled_eta"], e["best_loss_pooled_wd"]))
    return out


def evaluation(run: Run, proxy: int, target: int, seeds: list[int] | None, steps_args: str = "") -> dict:
    """Which seeds the target losses and regrets read, and what that means for them.
    ``steps_args``: the flags the suggested command repeats (lengths, rules, --eta/--wd, --refined)."""
    grid = run.grid_seeds
    if seeds is None:
        return {
            "seeds": grid,
            "fresh": False,
            "selection_seeds": grid,
            "note": f"regrets are read on the grid's {seeds_text(grid)}, the same noise that picked the best "
            "target cells: a selection-biased estimate (the lowest of many noisy cells is biased low, so "
            "a regret against it is biased high). For an unbiased one, train the competitors on fresh "
            f"seeds: lwscale transfer {run.root} --proxy-width {proxy} --target-width {target}{steps_args} "
            "--train --seeds 3",
        }
    return {
        "seeds": list(seeds),
        "fresh": True,
        "selection_seeds": grid,
        "note": f"the best cells were picked on the grid's {seeds_text(grid)}; every target loss and regret is "
        f"read on the fresh {seeds_text(seeds)} (transfer --train), paired seed by seed",
    }


def transfer(
    run: Run,
    proxy: int,
    target: int,
    rules: list[str] | None = None,
    eta: float | None = None,
    wd: float | None = None,
    refined: bool = False,
    eval_seeds: list[int] | None = None,
    proxy_steps: int | None = None,
    target_steps: int | None = None,
) -> dict:
    """Everything ``lwscale transfer`` reports, as plain data (also transfer.json).

    The proxy is (``proxy``, ``proxy_steps``), the target (``target``, ``target_steps``);
    ``horizons`` says what they default to. Optima are picked on the grid's seeds
    (``run.stats``). Target losses, regrets and the ranking are read on ``eval_seeds`` (fresh
    seeds trained by ``transfer --train``), or on the grid's seeds when None, and every
    difference is paired over the seeds both sides share. Without target cells at
    ``target_steps`` only the per-class (lr, wd) are given."""
    check_width(run, proxy, "proxy")
    check_width(run, target, "target")
    proxy_steps, target_steps = horizons(run, proxy, target, proxy_steps, target_steps)
    if (eta is None) != (wd is None):
        raise UserError("give both --eta and --wd (base coordinates), or neither")
    if eta is not None and not (eta > 0 and wd >= 0):
        raise UserError(f"--eta must be positive and --wd non-negative, got {eta}, {wd}")
    requested_rules, rules = rules, check_rules(run, rules)
    at_target = run.stats[(run.stats["width"] == target) & (run.stats["steps"] == target_steps)]
    pooled = argmin(at_target)  # the best target cell of any rule
    own = {rule: argmin(panel(at_target, rule, target)) for rule in rules}  # ... and of each rule's grid
    steps_args = "" if not run.multi_horizon else f" --proxy-steps {proxy_steps} --target-steps {target_steps}"
    # the suggested --train command asks for the same transfer, so it trains these competitors
    steps_args += "".join(f" --rule {r}" for r in (requested_rules or []))
    steps_args += "" if eta is None else f" --eta {eta:g} --wd {wd:g}"
    steps_args += " --refined" if refined else ""
    ev_info = evaluation(run, proxy, target, eval_seeds, steps_args)
    ev = run.df[run.df["seed"].isin(ev_info["seeds"])]
    spec = run.spec
    out = {
        "run": str(run.root),
        "proxy_width": proxy,
        "target_width": target,
        "base_width": spec.model.d0,
        "proxy_steps": proxy_steps,
        "target_steps": target_steps,
        "base_steps": spec.steps_at(spec.model.d0, spec.base_horizon()),
        "multi_horizon": run.multi_horizon,
        "target_in_run": target_steps in run.steps_at(target),
        "wd_mode": spec.optimizer.wd_mode,
        "evaluation": ev_info,
        "request": {"rules": requested_rules or None, "eta": eta, "wd": wd, "refined": refined},
        "rules": [],
        "warnings": [],
    }
    for rule in rules:
        opt = Optimum(eta, wd, "given") if eta is not None else proxy_optimum(run, rule, proxy, refined, proxy_steps)
        out["warnings"].extend(opt.warnings)
        r = get_rule(rule)
        entry = {
            "rule": rule,
            "eta": opt.eta,
            "wd": opt.wd,
            "source": opt.source,
            "eta_log2_se": opt.eta_se,
            "wd_log2_se": opt.wd_se,
            "h": r.h,
            "h_lr": r.h_lr,
            "proxy_steps": proxy_steps,
            "target_steps": target_steps,
            "classes": [
                asdict(c)
                for c in class_rows(spec, rule, proxy, target, opt.eta, opt.wd, proxy_steps, target_steps, run.classes)
            ],
        }
        entry.update(
            target_metrics(
                run, ev, rule, proxy, target, opt, pooled, own[rule], proxy_steps, target_steps, fresh=ev_info["fresh"]
            )
        )
        out["rules"].append(entry)
    if not out["target_in_run"]:
        out["warnings"].append(
            f"the run has no cells at width {target} trained {target_steps:,} steps: the table "
            "gives each rule's (lr, wd) there, with no loss to judge it by"
        )
    proxy_stats = run.stats[run.stats["steps"] == proxy_steps]
    out["gate"] = gate(proxy_stats, proxy, pooled, own)
    out["ranking"] = rank({e["rule"]: e.get("target_seeds", {}) for e in out["rules"]})
    ranked = {r["rule"] for r in out["ranking"]}
    # a rule whose transferred point did not finish (diverged, failed) is not ranked: say so, never drop it silently
    out["unranked"] = [
        {"rule": e["rule"], "status": e.get("target_status")}
        for e in out["rules"]
        if e["rule"] not in ranked and e.get("target_status") not in (None, "not in the grid")
    ]
    return out


CSV_COLUMNS = [
    "rule",
    "source",
    "eta",
    "wd",
    "group",
    "cls",
    "proxy_lr",
    "proxy_wd",
    "proxy_tau",
    "target_lr",
    "target_wd",
    "target_tau",
    "target_status",
    "target_n",
    "target_loss",
    "target_loss_se",
    "best_loss_pooled",
    "best_loss_pooled_rule",
    "regret_pooled",
    "regret_pooled_se",
    "tie_pooled",
    "regret_rule",
    "regret_rule_se",
    "tie_rule",
    "regret_pooled_paired",
    "regret_rule_paired",
    "eval_seeds",
    "fresh_seeds",
    "target_opt_eta",
    "target_opt_wd",
    "d_log2_eta",
    "d_log2_wd",
    "d_log2_eta_x_wd",
    "d_log2_eta_over_wd",
    "d_log2_eta_x_wd_se",
    "d_log2_eta_over_wd_se",
    "sigma_max_ratio",
    "proxy_steps",
    "target_steps",
    "h",
    "h_lr",
]


def to_frame(result: dict) -> pd.DataFrame:
    """transfer.csv: one row per rule and parameter group."""
    rows = []
    ev = result.get("evaluation", {})
    seeds = {"eval_seeds": " ".join(map(str, ev.get("seeds", []))), "fresh_seeds": ev.get("fresh")}
    for e in result["rules"]:
        for c in e["classes"]:
            rows.append({**{k: v for k, v in e.items() if k != "classes"}, **seeds, **c})
    return pd.DataFrame(rows).reindex(columns=CSV_COLUMNS)


def write_transfer(root: Path, result: dict) -> str:
    """Write ``result`` as transfer.csv and transfer.json into the run directory ``root``
    (docs/records.md); returns the JSON text (strict: NaN and inf are null)."""
    atomic_write_text(root / "transfer.csv", to_frame(result).to_csv(index=False))
    text = json.dumps(strict_json(result), indent=1, default=float)
    atomic_write_text(root / "transfer.json", text)
    return text
