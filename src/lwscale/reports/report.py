"""report.md: what was run and what it showed, readable by someone who was not there.

Sections: the spec summary, cell counts, what it showed (each width's best cell, the transfer
verdict, timescales, optima on the grid's edge), the loss tables (mean ± se over seeds), every
figure under RUN_DIR/figures, the transfer table, and diagnose.md when it exists (``lwscale
report`` runs the diagnostics first, so it does when the cells have them).
"""

from __future__ import annotations

import json
import math

from lwscale.core.files import atomic_write_text
from lwscale.data.floor import floor_note
from lwscale.reports.fmt import num
from lwscale.reports.gate import VERDICT, gate_tab
from lwscale.reports.run import Run, panel
from lwscale.reports.tables import argmin, best_cells, finished, loss_tab
from lwscale.reports.transfer import edge_warnings
from lwscale.reports.transfer_tables import ends, hparam_tab, metrics_tab, ranking_tab, seeds_text


def spec_summary(run: Run) -> str:
    s = run.spec
    m, t, g = s.model, s.train, s.grid
    etas = sorted({e for e, _ in g.points()})
    wds = sorted({w for _, w in g.points()})
    lines = [
        f"- widths {', '.join(map(str, m.widths))} (base width d₀ = {m.d0}, multipliers "
        f"{', '.join(f'{w / m.d0:g}' for w in m.widths)}); depth {m.depth}, head_dim {m.head_dim}, "
        f"seq_len {m.seq_len}, unembedding {m.unembed_class}-like",
        f"- data: {s.data.source}, tokenizer {s.data.tokenizer}",
        f"- training: {_steps_text(s)}{f' ({t.tokens:,} tokens)' if t.tokens else ''}, batch {t.batch_size}, "
        f"{t.schedule} schedule, warmup {t.warmup:g}, grad clip {t.grad_clip}, seeds {t.seeds}",
        f"- AdamW β = {tuple(s.optimizer.betas)}, ε = {s.optimizer.eps:g}, weight decay {s.optimizer.wd_mode}",
        f"- grid (base coordinates at width {m.d0}): η ∈ {{{', '.join(f'{e:.3g}' for e in etas)}}}, "
        f"λ ∈ {{{', '.join(f'{w:.3g}' for w in wds)}}}" + (" (explicit pairs)" if g.pairs else ""),
        f"- rules: {', '.join(run.rules)}",
    ]
    return "\n".join(lines)


def _steps_text(spec) -> str:
    """ "1,000 steps", or the horizons, the base one and which widths train which."""
    t = spec.train
    if not spec.multi_horizon:
        return f"{t.steps or '—'} steps"
    by = "".join(
        f"; width {w} at {', '.join(f'{h:,}' for h in spec.horizons_at(w))}"
        for w in spec.model.widths
        if spec.horizons_at(w) != spec.horizons()
    )
    return (
        f"horizons {', '.join(f'{h:,}' for h in spec.horizons())} steps (base horizon S0 = {spec.base_horizon():,}{by})"
    )


def findings(run: Run, result: dict | None) -> str:
    """A few sentences a reader can take away: each width's best cell, the transfer verdict,
    and whether the cells reached AdamW's steady state."""
    lines = []
    best = best_cells(run.stats)
    for rule in run.rules:
        b = best[best["rule"] == rule].sort_values("width")
        if len(b):
            per = "per width and length " if run.multi_horizon else "per width "
            lines.append(
                f"- {rule}: best cell {per}"
                + "; ".join(
                    f"{int(r.width)}{f'/{int(r.steps)}' if run.multi_horizon else ''}: η = {r.eta:.3g}, λ = {r.wd:.3g} "
                    f"(loss {r.loss:.4f})"
                    for r in b.sort_values(["width", "steps"]).itertuples()
                )
            )
    g = (result or {}).get("gate")
    if g:
        w, st = g["wider_is_better"], g["steady_state"]
        lines.append(
            f"- Validity gate: {VERDICT[g['holds']]} (wider is better at the optimum: {VERDICT[w['holds']]}; "
            f"the target's optimum completes ≥ {g['min_timescales_required']:g} timescales: "
            f"{VERDICT[st['holds']]}, least {num(st['min_timescales'], '.2f')})"
            + (
                ""
                if g["holds"]
                else ": read the transfer below as a measurement outside the regime the rules are derived for"
            )
            + "."
        )
    unranked = (result or {}).get("unranked") or []
    if unranked:
        lines.append(
            "- Not ranked: "
            + "; ".join(f"{u['rule']} ({u['status']} at its transferred point)" for u in unranked)
            + "."
        )
    if result and len(result.get("ranking") or []) > 1:
        top = result["ranking"][0]
        ties = [r["rule"] for r in result["ranking"][1:] if r["tie_with_best"]]
        ev = result.get("evaluation") or {}
        lines.append(
            f"- Transferring the {ends(result)[2].replace(' -> ', ' optimum to ')}, "
            f"{top['rule']} lands on the lowest target loss ({top['loss']:.4f})"
            + (f", tied within the seed noise with {', '.join(ties)}" if ties else "")
            + (
                ""
                if top["se"] is not None and math.isfinite(top["se"])
                else " (one seed: the gaps are not tested against the seed noise)"
            )
            + (
                ""
                if not ev
                else f"; read on the {'fresh ' if ev['fresh'] else 'grid '}"
                f"{seeds_text(ev['seeds'])}"
                + ("" if ev["fresh"] else ", which also picked the optima, so the regrets are selection-biased")
            )
            + "."
        )
    for edge in edge_findings(run):
        lines.append(f"- Edge of the grid: {edge}.")
    ts = run.df.loc[finished(run.df, "timescales"), "timescales"] if "timescales" in run.df else []
    if len(ts):
        low = float((ts < 3).mean())
        lines.append(
            f"- AdamW timescales completed Σ lr·wd (matrices): median {ts.median():.2f}"
            + (
                f"; {low:.0%} of the cells completed fewer than 3, so they are not in steady state and "
                "the grid tests η more than λ"
                if low
                else "; every cell completed at least 3"
            )
            + "."
        )
    return "\n".join(lines) or "No finished cells yet."


def edge_findings(run: Run) -> list[str]:
    """For each rule and width whose best cell lies on the grid's edge, which way to widen it
    (``transfer.edge_warnings``): an optimum there may lie outside the grid."""
    out = []
    for rule in run.rules:
        for width, steps in run.panels():  # each training length on its own
            sub = panel(run.stats, rule, width, steps)
            best = argmin(sub)
            if best is not None:
                out += edge_warnings(
                    sub, float(best["eta"]), float(best["wd"]), f"the best {rule} cell at {run.where(width, steps)}"
                )
    return out


def status_counts(run: Run) -> str:
    cells = run.df.drop_duplicates("cell_id") if "cell_id" in run.df else run.df
    counts = cells["status"].value_counts().to_dict()
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def loss_table_md(run: Run, rule: str, width: int, steps: int | None = None) -> str:
    """Markdown: rows lambda, columns eta (base coordinates), the best cell starred."""
    return loss_tab(run.stats, rule, width, steps).markdown()


def transfer_md(result: dict) -> str:
    p, t, _ = ends(result)
    out = [
        f"Proxy width {p} → target width {t}"
        + (" (width/steps)" if result.get("multi_horizon") else "")
        + "; (η, λ) in base coordinates; wd is PyTorch-coupled "
        f"({result['wd_mode']} mode in the spec). τ = 1/(lr·wd) steps.",
        "",
        hparam_tab(result).markdown(),
    ]
    g = gate_tab(result)
    if g is not None:
        out += ["", f"**{g.title}**", "", g.markdown()]
    metrics = metrics_tab(result)
    if metrics is not None:
        e0 = next(e for e in result["rules"] if "best_loss_pooled" in e)
        ev = result.get("evaluation") or {}
        out += [
            "",
            metrics.title + ":",
            "",
            metrics.markdown(),
            "",
            f"Best target cell over all rules: {e0['best_loss_pooled_rule']}, "
            f"η = {e0['best_loss_pooled_eta']:.4g}, λ = {e0['best_loss_pooled_wd']:.4g} (loss "
            f"{num(e0['best_loss_pooled'], '.4f')}). Regrets are paired seed by seed; within 2 seed standard "
            "errors they are ties; with one seed there is no noise estimate and nothing is called a tie.",
        ]
        if ev.get("note"):
            out += ["", ("" if ev["fresh"] else "Note: ") + ev["note"][0].upper() + ev["note"][1:] + "."]
    ranking = ranking_tab(result.get("ranking", []))
    if ranking is not None:
        out += ["", ranking.markdown()]
    for w in result.get("warnings", []):
        out.append(f"\n> warning: {w}")
    return "\n".join(out)


def evaluation_seeds(
    run: Run, proxy: int, target: int, proxy_steps: int | None = None, target_steps: int | None = None
) -> list[int] | None:
    """The fresh seeds of an earlier ``transfer --train`` of the same transfer report and plot
    make (the same widths and lengths, the lengths defaulting as ``transfer``'s do; every rule,
    grid argmins: no --rule, --eta/--wd or --refined), so report.md reads the same evaluation;
    None otherwise: the competitors of another transfer were trained, not these."""
    path = run.root / "transfer.json"
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ev = old.get("evaluation") or {}
    same = (old.get("proxy_width"), old.get("target_width")) == (proxy, target)
    if "target_steps" in old:  # written with lengths (a transfer.json from before has one per width)
        lengths = (proxy_steps or run.default_steps(proxy), target_steps or run.default_steps(target, longest=True))
        same = same and (old.get("proxy_steps"), old.get("target_steps")) == lengths
    request = old.get("request") or {}
    same = same and not (request.get("rules") or request.get("eta") is not None or request.get("refined"))
    return list(ev["seeds"]) if same and ev.get("fresh") else None


def write_report(run: Run, transfer_result: dict | None) -> str:
    parts = [
        f"# lwscale report: {run.spec.name}",
        "",
        f"Run directory `{run.root}`. Cells: {status_counts(run)}.",
        "",
        "## What was run",
        spec_summary(run),
        "",
        "## What it showed",
        findings(run, transfer_result),
        "",
        "## Final validation loss",
        f"Mean over the grid's {seeds_text(run.grid_seeds)} (± standard error "
        "with several seeds; seeds `transfer --train` added are not in these tables); ★ the best cell of each "
        "table; rows λ and columns η in base coordinates."
        + (f" The {floor_note(run.spec.data)}." if floor_note(run.spec.data) else ""),
    ]
    for rule in run.rules:
        for width, steps in run.panels():
            if not panel(run.stats, rule, width, steps).empty:
                parts += [
                    "",
                    f"### {rule}, {run.where(width, steps)}",
                    loss_table_md(run, rule, width, steps if run.multi_horizon else None),
                ]
    parts += ["", "## Transfer"]
    parts.append(transfer_md(transfer_result) if transfer_result else "Needs two widths with finished cells.")
    order = {"heatmaps": 0, "slices": 1, "transfer": 2, "curves": 3}
    figs = (
        sorted((run.root / "figures").glob("*.png"), key=lambda f: (order.get(f.stem, 9), f.name))
        if (run.root / "figures").is_dir()
        else []
    )
    parts += ["", "## Figures"]
    parts += [f"### {f.stem}\n![{f.stem}](figures/{f.name})" for f in figs] or ["No figures yet: run `lwscale plot`."]
    diag = run.root / "diagnose.md"
    if diag.exists():
        parts += ["", "## Diagnostics (diagnose.md)", diag.read_text(encoding="utf-8").strip()]
    text = "\n".join(parts) + "\n"
    atomic_write_text(run.root / "report.md", text)
    return text
