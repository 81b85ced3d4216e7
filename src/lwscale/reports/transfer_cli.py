"""Rich tables of a transfer result: what to copy into the target's config, then how it fared."""
from __future__ import annotations

import math

from rich.table import Table


def _f(x, fmt: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "inf" if x == math.inf else "–"
    return format(x, fmt)


def _pm(e: dict, key: str, tie_key: str | None = None) -> str:
    v = e.get(key)
    if v is None or not math.isfinite(v):
        return "–"
    se = e.get(key + "_se")
    txt = f"{v:.4f}" + (f" ± {se:.4f}" if se is not None and math.isfinite(se) else "")
    return txt + (" [cyan](tie)[/]" if tie_key and e.get(tie_key) else "")


def hparam_table(result: dict) -> Table:
    p, t = result["proxy_width"], result["target_width"]
    table = Table(title=f"transfer width {p} -> {t}: per-class AdamW (lr, coupled wd) and tau = 1/(lr*wd) steps",
                  title_justify="left")
    for col in ("rule", "base (eta, lambda)", "group", f"lr @{p}", f"wd @{p}", f"tau @{p}",
                f"lr @{t}", f"wd @{t}", f"tau @{t}"):
        table.add_column(col, justify="right" if "@" in col else "left")
    for e in result["rules"]:
        for i, c in enumerate(e["classes"]):
            point = f"({e['eta']:.4g}, {e['wd']:.4g})" if i == 0 else f"[dim]{e['source']}[/]" if i == 1 else ""
            table.add_row(e["rule"] if i == 0 else "", point, c["group"], _f(c["proxy_lr"]), _f(c["proxy_wd"]),
                          _f(c["proxy_tau"], ",.0f"), _f(c["target_lr"]), _f(c["target_wd"]), _f(c["target_tau"], ",.0f"))
    return table


def metrics_table(result: dict) -> Table | None:
    rows = [e for e in result["rules"] if "best_loss_pooled" in e]
    if not rows:
        return None
    noisy = any(e.get("target_loss_se") is not None and math.isfinite(e["target_loss_se"]) for e in rows)
    table = Table(title=f"at the target (best cell of any rule: {rows[0]['best_loss_pooled']:.4f}, "
                        f"{rows[0]['best_loss_pooled_rule']}); " + ("ties: within 2 seed standard errors" if noisy else
                        "one seed: no noise estimate, so no ties are called"),
                  title_justify="left")
    for col in ("rule", "loss", "regret pooled", "regret own grid", "target optimum",
                "Δlog2 η", "Δlog2 λ", "Δlog2 ηλ", "Δlog2 η/λ", "σmax ratio"):
        table.add_column(col, justify="right")
    for e in rows:
        opt = f"{e['target_opt_eta']:.3g}, {e['target_opt_wd']:.3g}" if "target_opt_eta" in e else "–"
        loss = _pm(e, "target_loss") if "target_loss" in e else str(e.get("target_status", "–"))
        table.add_row(e["rule"], loss, _pm(e, "regret_pooled", "tie_pooled"), _pm(e, "regret_rule", "tie_rule"), opt,
                      _f(e.get("d_log2_eta"), "+.2f"), _f(e.get("d_log2_wd"), "+.2f"),
                      _f(e.get("d_log2_eta_x_wd"), "+.2f"), _f(e.get("d_log2_eta_over_wd"), "+.2f"),
                      _f(e.get("sigma_max_ratio"), ".3f"))
    return table


def ranking_lines(ranking: list[dict], what: str) -> list[str]:
    if not ranking:
        return []
    out = [f"ranking by {what}:"]
    for r in ranking:
        se = f" ± {r['se']:.4f}" if r["se"] is not None and math.isfinite(r["se"]) else ""
        tie = " (tie with the best: within the seed noise)" if r["tie_with_best"] else ""
        out.append(f"  {r['rank']}. {r['rule']}: {r['loss']:.4f}{se}, +{r['gap']:.4f}{tie}")
    return out


def print_transfer(console, result: dict) -> None:
    console.print(hparam_table(result))
    m = metrics_table(result)
    if m is not None:
        console.print(m)
    for line in ranking_lines(result.get("ranking", []), "target loss at the transferred point (grid cells)"):
        console.print(line)
    for line in ranking_lines(result.get("trained_ranking", []), "loss of the --train runs at the transferred point"):
        console.print(line)
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
