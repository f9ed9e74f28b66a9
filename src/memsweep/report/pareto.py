"""Precision against memory: each configuration's belief error and footprint, and the
configurations no other beats in both."""

from __future__ import annotations

import numpy as np
import pandas as pd

from memsweep.report.queries import (
    WORLD,
    Resolution,
    footprint,
    per_config,
    selector,
    with_world,
)


def pareto(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points no other point beats in both ``x`` and ``y`` (smaller is better in both)."""
    ordered = points.sort_values([x, y])
    front, best = [], np.inf
    for index, row in ordered.iterrows():
        if row[y] < best:
            front.append(index)
            best = row[y]
    return ordered.loc[front]


def precision_points(frame: pd.DataFrame, resolution: Resolution | None = None) -> pd.DataFrame:
    """Largest grid and agent count (of each world: two worlds are never compared):
    resident footprint and belief error per configuration (a footprint below its probes'
    ``resolution`` is left out: it ranks nothing)."""
    error = per_config(frame, selector("precision", "step", "max_abs_qs_error", "reference_trace"))
    memory = footprint(frame, "resident", resolution)
    memory = memory.assign(memory=memory.value.where(memory.resolved.astype(bool)))
    memory = memory[["config_id", "memory"]]
    points = with_world(error.merge(memory, on="config_id"))
    if points.empty:
        return points
    per_world = points.groupby(WORLD)
    largest = (points.grid == per_world.grid.transform("max")) & (
        points.agents == per_world.agents.transform("max")
    )
    points = points[largest]
    return points[points.value.notna() & points.memory.notna()]
