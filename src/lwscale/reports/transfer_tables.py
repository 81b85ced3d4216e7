"""A transfer result's two tables, built once as ``Tab``s: the per-class (lr, wd) and tau to
copy into the target's config, and how each rule fared at the target. ``lwscale transfer``
prints them with Rich (lwscale/cli/transfer.py); report.md writes them as Markdown (report.py).
"""

from __future__ import annotations

import math

from lwscale.reports.fmt import num, pm
from lwscale.reports.tables import Tab


def seeds_text(seeds) -> str:
    seeds = list(seeds or [])
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds)) if seeds else "no shared seed"


def evaluation_text(result: dict) -> str:
    """Which seeds picked the optima and which seeds read the losses (a transfer.json written
    before the evaluation was recorded says nothing)."""
    ev = result.get("evaluation")
    if not ev:
        return ""
    if ev["fresh"]:
        return f"losses on the fresh {seeds_text(ev['seeds'])}; optima picked on the grid's {seeds_text(ev['selection_seeds'])}"
    return f"losses on the grid's {seeds_text(ev['seeds'])}, which also picked the optima (selection-biased)"


def plus_minus(e: dict, key: str, tie_key: str | None = None) -> str:
    """``e[key]`` ± its standard error (``key``_se) when known, marked (tie) when ``e[tie_key]``."""
    txt = pm(e.get(key), e.get(key + "_se"))
    return txt + (" (tie)" if txt != "–" and tie_key and e.get(tie_key) else "")


def ends(result: dict) -> tuple[str, str, str]:
    """How tables name the proxy and the target, and the transfer: "32", "128", "width 32 -> 128";
    with horizons "32/200", "128/800", "width 32, 200 steps -> width 128, 800 steps"."""
    p, t = result["proxy_width"], result["target_width"]
    if not result.get("multi_horizon"):
        return str(p), str(t), f"width {p} -> {t}"
    ps, ts = result["proxy_steps"], result["target_steps"]
    return f"{p}/{ps}", f"{t}/{ts}", f"width {p}, {ps:,} steps -> width {t}, {ts:,} steps"


def hparam_tab(result: dict) -> Tab:
    """Per rule and parameter group: (lr, coupled wd, tau) at the proxy and at the target; the
    rule's base point on its first row and where it came from (grid argmin, refined, given) below."""
    p, t, what = ends(result)
    rows = []
    for e in result["rules"]:
        point = [f"({e['eta']:.4g}, {e['wd']:.4g})", e["source"]]
        if len(e["classes"]) == 1:
            point = [" ".join(point)]
        for i, c in enumerate(e["classes"]):
            rows.append(
                [
                    e["rule"] if i == 0 else "",
                    point[i] if i < len(point) else "",
                    c["group"],
                    num(c["proxy_lr"]),
                    num(c["proxy_wd"]),
                    num(c["proxy_tau"], ",.0f"),
                    num(c["target_lr"]),
                    num(c["target_wd"]),
                    num(c["target_tau"], ",.0f"),
                ]
            )
    return Tab(
        f"transfer {what}: per-class AdamW (lr, coupled wd) and tau = 1/(lr*wd) steps",
        ["rule", "base (η, λ)", "group", f"lr @{p}", f"wd @{p}", f"τ @{p}", f"lr @{t}", f"wd @{t}", f"τ @{t}"],
        rows,
        left=3,
    )


def metrics_tab(result: dict) -> Tab | None:
    """Per rule with target cells: the loss at its transferred point, the regrets, the target
    optimum, the shift and the sigma_max ratio. None when the run has no finished target cell."""
    measured = [e for e in result["rules"] if "best_loss_pooled" in e]
    if not measured:
        return None
    noisy = any(e.get("target_loss_se") is not None and math.isfinite(e["target_loss_se"]) for e in measured)
    e0 = measured[0]
    where = evaluation_text(result)
    title = (
        f"at the target (best cell of any rule: {e0['best_loss_pooled_rule']}, η {e0['best_loss_pooled_eta']:.3g}, "
        f"λ {e0['best_loss_pooled_wd']:.3g}, loss {num(e0['best_loss_pooled'], '.4f')}); "
        + (f"{where}; " if where else "")
        + (
            "regrets paired seed by seed, ties within 2 standard errors"
            if noisy
            else "one seed: no noise estimate, so no ties are called"
        )
    )
    common = {tuple(e[k]) for e in measured for k in ("regret_pooled_seeds", "regret_rule_seeds") if k in e}

    def regret(e: dict, key: str) -> str:
        txt = plus_minus(e, f"regret_{key}", f"tie_{key}")
        seeds = e.get(f"regret_{key}_seeds")
        # name the seeds where a rule's differ from the others' (a seed that failed, say)
        return txt + (f" [{seeds_text(seeds)}]" if seeds is not None and len(common) > 1 and txt != "–" else "")

    rows = []
    for e in measured:
        opt = f"({e['target_opt_eta']:.3g}, {e['target_opt_wd']:.3g})" if "target_opt_eta" in e else "–"
        loss = plus_minus(e, "target_loss") if "target_loss" in e else str(e.get("target_status", "–"))
        rows.append(
            [e["rule"], loss, regret(e, "pooled"), regret(e, "rule"), opt]
            + [num(e.get(k), "+.2f") for k in ("d_log2_eta", "d_log2_wd", "d_log2_eta_x_wd", "d_log2_eta_over_wd")]
            + [num(e.get("sigma_max_ratio"), ".3f")]
        )
    return Tab(
        title,
        [
            "rule",
            "target loss",
            "regret (pooled)",
            "regret (own grid)",
            "target optimum (η, λ)",
            "Δlog₂η",
            "Δlog₂λ",
            "Δlog₂ηλ",
            "Δlog₂η/λ",
            "σ_max ratio",
        ],
        rows,
    )


def ranking_tab(ranking: list[dict], what: str | None = None) -> Tab | None:
    """Rules ranked by loss, the gap to the best with its standard error (paired over the seeds
    every ranked rule finished), and whether the gap is within the seed noise."""
    if not ranking:
        return None
    seeds = ranking[0].get("seeds")
    what = what or ("the target loss at the transferred point" + (f", {seeds_text(seeds)}" if seeds else ""))
    rows = []
    for r in ranking:
        gap_se = r.get("gap_se", math.nan)  # absent in a transfer.json written before pairing
        known = gap_se is not None and math.isfinite(gap_se)
        gap = (
            "–"
            if r["rank"] == 1
            else "+" * (r["gap"] >= 0)
            + pm(r["gap"], gap_se)
            + (f" (paired, {r['paired']} seeds)" if known and r.get("paired") else "")
        )
        if r["rank"] == 1:
            tie = ""
        elif known or "gap_se" not in r:
            tie = "yes" if r["tie_with_best"] else "no"
        else:
            tie = "no noise estimate"
        rows.append([str(r["rank"]), r["rule"], pm(r["loss"], r["se"]), gap, tie])
    return Tab(f"ranking by {what}", ["rank", "rule", "loss", "gap to the best", "tie with the best"], rows, left=2)
