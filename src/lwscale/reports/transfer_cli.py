"""``lwscale transfer``'s terminal output: the transfer tables (transfer_tables.py) with Rich,
the rankings and the warnings."""
from __future__ import annotations

from .gate import gate_tab
from .transfer_tables import hparam_tab, metrics_tab, ranking_tab


def print_transfer(console, result: dict) -> None:
    console.print(hparam_tab(result).rich())
    g = gate_tab(result)
    if g is not None:
        console.print(g.rich())
    m = metrics_tab(result)
    if m is not None:
        console.print(m.rich())
        ev = result.get("evaluation") or {}
        if ev.get("note"):
            console.print(("" if ev["fresh"] else "[yellow]note:[/] ") + ev["note"], soft_wrap=True)
    tab = ranking_tab(result.get("ranking", []))
    if tab is not None:
        console.print(tab.rich())
    for u in result.get("unranked") or []:
        console.print(f"[yellow]not ranked:[/] {u['rule']}: {u['status']} at its transferred point", soft_wrap=True)
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
