"""Matplotlib helpers shared by the figures: one backend, one palette, one way to save."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from memsweep.report.fits import fit_exponent
from memsweep.report.queries import WORLD, several_worlds, with_world, world_of, worlds

# A line's style per world (the first, the default world's, solid).
STYLES = ("o-", "s--", "^:", "v-.")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a cluster node or in CI
    import matplotlib.pyplot as plt

    return plt


def palette(table: pd.DataFrame) -> dict[tuple, object]:
    """One colour per backend/storage/dtype, the same in every panel (tab20: 20 colours)."""
    plt = pyplot()
    keys = sorted({tuple(k) for k in table[["backend", "storage", "dtype"]].to_numpy()})
    return {key: plt.cm.tab20(i % 20) for i, key in enumerate(keys)}


def label(row, world: bool = False) -> str:
    """A line's name; ``world``: its world too (a sweep of several)."""
    return f"{row['backend']} {row['storage']} {row['dtype']}" + (
        f" {world_of(row)}" if world else ""
    )


def save(fig, path: Path) -> Path:
    # The tight layout as an engine runs within savefig's one drawing of the figure;
    # fig.tight_layout() draws it once more first (half of a figure's time).
    fig.set_layout_engine("tight")
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def empty(ax, text="no measurements"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def measured_ticks(ax, values) -> None:
    """A log x axis labelled at the measured values only (default minor labels collide)."""
    from matplotlib.ticker import NullFormatter, NullLocator

    ax.set_xscale("log")
    ticks = sorted(set(values.tolist()))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def lines_vs_states(ax, table: pd.DataFrame, scale: float) -> None:
    """One line per backend/storage/dtype (and world, where a sweep measured several:
    two worlds' states are no scale of one model) against N, its fitted exponent in the
    legend."""
    if table.empty:
        empty(ax)
        return
    colours = palette(table)
    table = with_world(table)
    several = several_worlds(table)
    styles = {world: STYLES[i % len(STYLES)] for i, world in enumerate(worlds(table))}
    for key, group in table.groupby(["backend", "storage", "dtype", WORLD]):
        group = group.sort_values("states")
        fit = fit_exponent(group, "states")
        exponent = f" (N^{fit.exponent:.2f})" if fit else ""
        ax.plot(group.states, group.value * scale, styles.get(key[3], "o-"),
                color=colours[key[:3]], label=label(group.iloc[0], several) + exponent)  # fmt: skip
    ax.set_yscale("log")
    measured_ticks(ax, table.states)
    ax.set_xlabel("states N")
    ax.legend(fontsize=7)


def panels(count: int):
    """A figure with ``count`` panels side by side (at least one)."""
    return pyplot().subplots(1, count, figsize=(5.5 * count, 4.2), squeeze=False)
