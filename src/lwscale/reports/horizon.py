"""The optimal weight decay across widths and training lengths, read straight from the loss
surface, and the exponents that describe it (docs/science.md §2, docs/transfer.md).

For every (width, steps) panel of a rule's grid, the optimum (eta*, lambda*) in base
coordinates is the grid argmin of the seed means, refined by default to the vertex of a
quadratic in (log2 eta, log2 lambda) fitted to the 3x3 cells around it (the same fit as
``transfer --refined``). The rule maps it to the *physical* coupled matrix weight decay
lambda*_phys = lambda* m^g (S/S0)^-h (the built-in model's multiplier m = d/d0; SP's is 1),
which does not depend on the rule that sampled it. A least-squares fit of

    log2 lambda*_phys = c + g_hat * log2 m - h_hat * log2 (S/S0)

gives the empirical width exponent g_hat (beside the sigma_max-derived g = 2*alpha - 1 of
``lwscale diagnose``) and horizon exponent h_hat (h = 1: the timescales completed
sum_t lr_t*wd held fixed across lengths). Both come as a ready ``custom`` rule. Intervals:
with several grid seeds, from the spread of each seed's own fit (its own optima); with one
seed, a parametric bootstrap: every cell's loss redrawn with the noise the local quadratic
fits leave (their residuals, pooled over panels and scaled for the parameters they fitted),
the optima and the exponents found again, 2.5 and 97.5 percentiles. An optimum on the grid's
edge cannot move past it, so there the interval is a bound from the grid (``edge`` says how
many). Without a noise estimate, Student's t on the fit's residuals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lwscale.reports.fits import t975
from lwscale.reports.run import Run, panel
from lwscale.reports.tables import Tab, argmin, cell_stats, mean_se
from lwscale.reports.transfer import local_quadratic, quadratic_vertex
from lwscale.science.rules import get_rule, optimizer_hparams


@dataclass
class PanelOptimum:
    rule: str
    width: int
    steps: int
    m: float  # width / d0
    rho: float  # S / S0
    eta: float  # base coordinates
    wd: float
    wd_phys: float  # coupled matrix wd the optimum trained with
    lr_phys: float  # matrix lr
    source: str  # "refined" or "grid argmin"
    on_edge: bool  # the grid argmin lies on the grid's edge in lambda: lambda* may lie beyond


@dataclass
class Exponent:
    value: float
    se: float
    lo: float
    hi: float

    def text(self, digits: int = 2) -> str:
        if not math.isfinite(self.value):
            return "n/a"
        f = lambda v: f"{round(v, digits) + 0.0:.{digits}f}"  # noqa: E731  (no "-0.00")
        if not math.isfinite(self.se):
            return f"{f(self.value)} (no interval)"
        return f"{f(self.value)} [{f(self.lo)}, {f(self.hi)}]"

    def to_dict(self) -> dict:
        f = lambda v: v if math.isfinite(v) else None  # noqa: E731
        return {"value": f(self.value), "se": f(self.se), "ci95": [f(self.lo), f(self.hi)]}


NAN = Exponent(math.nan, math.nan, math.nan, math.nan)


@dataclass
class LambdaFit:
    rule: str
    g: Exponent  # lambda*_phys ~ m**g
    h: Exponent  # lambda*_phys ~ (S/S0)**-h
    n: int  # optima fitted
    edge: int  # of them on the grid's lambda edge
    intervals: str  # "seeds", "bootstrap", "t" or "none"
    optima: list[PanelOptimum] = field(default_factory=list)

    def rule_label(self, a: float) -> str:
        """The fitted exponents as a rule label: custom(a=..,g=..,h=..) (a: the rule's lr exponent)."""
        g = round(self.g.value, 2) + 0.0 if math.isfinite(self.g.value) else 0.0
        h = round(self.h.value, 2) + 0.0 if math.isfinite(self.h.value) else 0.0
        return f"custom(a={a:g},g={g:g},h={h:g})"

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "g": self.g.to_dict(),
            "h": self.h.to_dict(),
            "n": self.n,
            "on_edge": self.edge,
            "intervals": self.intervals,
            "optima": [{k: v for k, v in o.__dict__.items()} for o in self.optima],
        }


# ---- the optima ------------------------------------------------------------------------------
def physical(run: Run, rule: str, width: int, steps: int, eta: float, wd: float) -> tuple[float, float]:
    """(matrix lr, coupled matrix wd) that base (eta, wd) trains with at (width, steps) under ``rule``."""
    spec, r = run.spec, get_rule(rule)
    m = width / spec.model.d0 if r.mup else 1.0
    rho = spec.horizon_ratio(width, steps)
    return optimizer_hparams(r, eta, wd, m, "matrix", spec.optimizer.wd_mode, spec.model.vector_lr_mult, rho)


def panel_optimum(
    run: Run, stats: pd.DataFrame, rule: str, width: int, steps: int, refined: bool = True
) -> PanelOptimum | None:
    """The optimum of one (rule, width, steps) panel of ``stats`` (None when no cell finished)."""
    return _optimum_of(run, panel(stats, rule, width, steps), rule, width, steps, refined)


def _optimum_of(run: Run, sub: pd.DataFrame, rule: str, width: int, steps: int, refined: bool) -> PanelOptimum | None:
    """``panel_optimum`` of the panel's rows ``sub``."""
    best = argmin(sub)
    if best is None:
        return None
    eta, wd, source = float(best["eta"]), float(best["wd"]), "grid argmin"
    if refined:
        v = quadratic_vertex(sub, best)
        if v is not None:
            eta, wd, source = 2.0 ** v[0], 2.0 ** v[1], "refined"
    wds = sorted(w for w in sub["wd"].unique() if w > 0)
    edge = len(wds) >= 2 and (best["wd"] <= wds[0] or best["wd"] >= wds[-1])
    lr_p, wd_p = physical(run, rule, width, steps, eta, wd)
    return PanelOptimum(
        rule,
        width,
        steps,
        width / run.spec.model.d0,
        run.spec.horizon_ratio(width, steps),
        eta,
        wd,
        wd_p,
        lr_p,
        source,
        bool(edge),
    )


def optima(run: Run, rule: str, refined: bool = True, stats: pd.DataFrame | None = None) -> list[PanelOptimum]:
    """Every (width, steps) panel's optimum of ``rule`` (on the grid's seeds unless ``stats``)."""
    stats = run.stats if stats is None else stats
    out = [panel_optimum(run, stats, rule, w, s, refined) for w, s in run.panels()]
    return [o for o in out if o is not None and o.wd_phys > 0]


# ---- the fit ---------------------------------------------------------------------------------
def _lstsq(opts: list[PanelOptimum]) -> tuple[np.ndarray, list[str], float, int]:
    """Coefficients of log2 wd_phys on the regressors that vary (log2 m, log2 rho), their
    names, the residual variance and the degrees of freedom."""
    y = np.array([math.log2(o.wd_phys) for o in opts])
    cols, names = [np.ones(len(opts))], []
    for name, v in (("g", [math.log2(o.m) for o in opts]), ("h", [math.log2(o.rho) for o in opts])):
        v = np.array(v)
        if np.ptp(v) > 1e-12:
            cols.append(v)
            names.append(name)
    X = np.stack(cols, 1)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        return np.full(len(names), np.nan), names, math.nan, 0
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(y) - X.shape[1]
    var = float(((y - X @ coef) ** 2).sum() / dof) if dof > 0 else math.nan
    cov = var * np.linalg.inv(X.T @ X) if dof > 0 else np.full((X.shape[1],) * 2, np.nan)
    return np.concatenate([coef[1:], np.sqrt(np.diag(cov))[1:]]), names, var, dof


def _exponents(opts: list[PanelOptimum]) -> dict[str, tuple[float, float, int]]:
    """{"g": (value, se, dof), "h": ...} of the regressors that vary; h's sign flipped (wd ~ S^-h)."""
    if len(opts) < 2:
        return {}
    res, names, _, dof = _lstsq(opts)
    k = len(names)
    out = {}
    for i, name in enumerate(names):
        sign = -1.0 if name == "h" else 1.0
        out[name] = (sign * float(res[i]), float(res[k + i]), dof)
    return out


def fit_lambda(run: Run, rule: str, refined: bool = True) -> LambdaFit:
    """The width and horizon exponents of ``rule``'s physical lambda* (module docstring)."""
    opts = optima(run, rule, refined)
    point = _exponents(opts)
    seeds = run.grid_seeds
    per_seed: dict[str, list[float]] = {}
    if len(seeds) > 1:
        d = run.df[run.df["seed"].isin(seeds)]
        for _, ds in d.groupby("seed"):
            for name, (v, _, _) in _exponents(optima(run, rule, refined, cell_stats(ds))).items():
                per_seed.setdefault(name, []).append(v)
    boot = bootstrap_exponents(run, rule, refined) if len(seeds) < 2 else {}
    fits, how = {}, "none"
    for name in ("g", "h"):
        if name not in point or not math.isfinite(point[name][0]):
            fits[name] = NAN
            continue
        v, se_t, dof = point[name]
        spread = per_seed.get(name, [])
        draws = np.array(boot.get(name, []), dtype=float)
        if len(spread) >= 2:
            se, tq, how = mean_se(spread)[1], t975(len(spread) - 1), "seeds"
        elif len(draws) >= BOOTSTRAP // 2:
            lo, hi = np.percentile(draws, [2.5, 97.5])
            fits[name] = Exponent(v, float(draws.std(ddof=1)), float(min(lo, v)), float(max(hi, v)))
            how = "bootstrap"
            continue
        elif dof >= 1 and math.isfinite(se_t):
            se, tq, how = se_t, t975(dof), "t"
        else:
            se, tq = math.inf, math.inf
        fits[name] = Exponent(v, se, v - tq * se, v + tq * se)
    return LambdaFit(rule, fits["g"], fits["h"], len(opts), sum(o.on_edge for o in opts), how, opts)


BOOTSTRAP = 200  # draws of the one-seed bootstrap


def cell_noise(run: Run, rule: str, stats: pd.DataFrame | None = None) -> float:
    """The sd of one cell's loss about the loss surface, from the local quadratic fits around each
    panel's best cell: their residuals pooled, over the residual degrees of freedom (9 cells, 6
    parameters: 3 per full neighbourhood). NaN when no panel has a full fit."""
    stats = run.stats if stats is None else stats
    ss, dof = 0.0, 0
    for w, s in run.panels():
        sub = panel(stats, rule, w, s)
        best = argmin(sub)
        fit = None if best is None else local_quadratic(sub, best)
        if fit is not None and len(fit[3]) > 6:
            ss += float((fit[3] ** 2).sum())
            dof += len(fit[3]) - 6
    return math.sqrt(ss / dof) if dof > 0 else math.nan


def bootstrap_exponents(run: Run, rule: str, refined: bool = True, n: int = BOOTSTRAP) -> dict[str, list[float]]:
    """{"g": [...], "h": [...]}: the exponents of ``n`` surfaces whose every finished cell's loss
    is redrawn as the grid's value plus normal noise of ``cell_noise`` (seeded, reproducible)."""
    sigma = cell_noise(run, rule)
    if not (math.isfinite(sigma) and sigma > 0):
        return {}
    rng = np.random.default_rng(0)
    stats = run.stats[run.stats["rule"] == rule]
    # each panel's rows and their places in ``stats``, found once: a draw only changes the losses
    # (status as plain objects: each refit compares it, and pandas' string dtype compares slowly)
    subs = [(w, s, panel(stats, rule, w, s).astype({"status": object})) for w, s in run.panels()]
    subs = [(w, s, sub, stats.index.get_indexer(sub.index), sub["loss"].to_numpy(float)) for w, s, sub in subs]
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        noise = rng.normal(0.0, sigma, len(stats))  # one draw per cell of the rule, in the order of ``stats``
        opts = [
            _optimum_of(run, sub.assign(loss=loss + noise[at]), rule, w, s, refined) for w, s, sub, at, loss in subs
        ]
        for name, (v, _, _) in _exponents([o for o in opts if o is not None and o.wd_phys > 0]).items():
            if math.isfinite(v):
                draws.setdefault(name, []).append(v)
    return draws


def fit_all(run: Run, refined: bool = True) -> list[LambdaFit]:
    """``fit_lambda`` of every rule of the run, in the spec's order."""
    return [fit_lambda(run, rule, refined) for rule in run.rules]


def best_fit(fits: list[LambdaFit]) -> LambdaFit | None:
    """The fit a ready rule is read from: a fitted h or g, the fewest optima on the grid's edge,
    the most optima, then the spec's order."""
    ok = [f for f in fits if math.isfinite(f.g.value) or math.isfinite(f.h.value)]
    return min(ok, key=lambda f: (f.edge, -f.n)) if ok else None


def rule_snippet(fit: LambdaFit, a: float = 1.0) -> str:
    """The spec lines of the fitted rule, beside the rule it was read from."""
    g = fit.g.value if math.isfinite(fit.g.value) else 0.0
    h = fit.h.value if math.isfinite(fit.h.value) else 0.0
    why = f"{fit.rule_label(a)}: lambda* ~ m^g (S/S0)^-h on {fit.rule}'s grid, g = {fit.g.text()}, h = {fit.h.text()}"
    return f"rules:\n  - {fit.rule}\n  - {{name: custom, a: {a:g}, g: {g + 0.0:.3f}, h: {h + 0.0:.3f}}}   # {why}"


def fit_table(fits: list[LambdaFit]):
    """The fits as a ``Tab``: per rule, g and h with 95% intervals and the optima behind them."""
    rows = []
    for f in fits:
        rows.append(
            [
                f.rule,
                f.g.text(),
                f.h.text(),
                str(f.n),
                str(f.edge),
                {"seeds": "the seeds' own fits", "bootstrap": "bootstrap, cell noise", "t": "t, residuals"}.get(
                    f.intervals, "–"
                ),
            ]
        )
    return Tab(
        "lambda* from the loss surface: physical matrix wd at each (width, steps) optimum ~ m^g (S/S0)^-h "
        "(h = 1 holds the timescales completed fixed)",
        ["rule's grid", "g (width) [95% CI]", "h (horizon) [95% CI]", "optima", "on the λ edge", "interval from"],
        rows,
    )


def fit_lambda_data(fits: list[LambdaFit]) -> dict:
    best = best_fit(fits)
    return {
        "fits": [f.to_dict() for f in fits],
        "ready_rule": None if best is None else best.rule_label(get_rule(best.rule).a),
    }
