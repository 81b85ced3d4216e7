"""``lwscale coord-check``'s table and figure, from the measurements of lwscale/training/coord.py."""

from __future__ import annotations

from pathlib import Path

from lwscale.training.coord import MUP_SPREAD, CoordData


def coord_table(d: CoordData):
    """A Rich table: mean |activation| at the last step per type and width, and the spread."""
    from rich.table import Table

    last = next(iter(d.values.values())).shape[1] - 1
    table = Table(
        title=f"{d.rule}: mean |activation|, steps {min(1, last)}-{last} (spread = max/min across widths)",
        title_justify="left",
    )
    table.add_column("module")
    for w in d.widths:
        table.add_column(f"d={w}", justify="right")
    table.add_column("spread", justify="right")
    for t in d.values:  # COORD_TYPES for our model; a factory model's module types
        s = d.spread(t)
        flag = "" if not d.mup else "green" if s <= MUP_SPREAD else "yellow"
        txt = f"{s:.2f}x"
        table.add_row(t, *[f"{v:.3g}" for v in d.level(t)], f"[{flag}]{txt}[/]" if flag else txt)
    return table


def coord_figure(data: list[CoordData], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = next(iter(data[0].values.values())).shape[1]
    fig, axes = plt.subplots(len(data), steps, figsize=(3 * steps, 2.6 * len(data)), squeeze=False, sharey="row")
    for r, d in enumerate(data):
        for s in range(steps):
            ax = axes[r][s]
            for t in d.values:
                ax.plot(d.widths, d.values[t][:, s], marker=".", label=t)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{d.rule}, step {s}", fontsize=9)
            ax.set_xlabel("width")
        axes[r][0].set_ylabel("mean |activation|")
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
