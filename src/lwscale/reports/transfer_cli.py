"""``lwscale transfer``'s terminal output: the transfer tables (transfer_tables.py) with Rich,
the rankings and the warnings."""
from __future__ import annotations

import math

from .transfer_tables import hparam_tab, metrics_tab


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
    console.print(hparam_tab(result).rich())
    m = metrics_tab(result)
    if m is not None:
        console.print(m.rich())
    for line in ranking_lines(result.get("ranking", []), "target loss at the transferred point (grid cells)"):
        console.print(line)
    for line in ranking_lines(result.get("trained_ranking", []), "loss of the --train runs at the transferred point"):
        console.print(line)
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
