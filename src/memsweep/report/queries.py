"""The query layer over the tidy measurement table: select rows, reduce them to one
figure per configuration, and name configurations.

A *selector* names rows by (phase, operation, metric, probe); :func:`per_config`
turns them into one median per configuration. Every figure in the report goes
through here, so a figure and the rows it came from are always one selector apart.

Given the probes' resolutions (``memsweep.harness.calibration.resolution``: probe ->
bytes), every row and figure in bytes carries its probe's ``resolution`` and whether it
is ``resolved`` (its magnitude reaches the resolution). An unresolved figure is shown as
``< N`` (:func:`figure`) and enters no ranking, saving or share: a temporary that reuses
resident pages reads 0 under ``vmhwm``, which is no evidence that it costs nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memsweep.harness import probes
from memsweep.harness.calibration import TOLERANCE
from memsweep.plan.jobs import ALLOCATOR
from memsweep.report.formats import Unresolved
from memsweep.results.schema import CONFIG_FIELDS
from memsweep.world.base import DEFAULT_WORLD

# Every column that names a configuration (``layout`` is an outcome, not a setting).
CONFIG = [f.name for f in CONFIG_FIELDS if f.name != "layout"]
# The axes a fix may change; the others (grid, agents, ...) set the problem, not the remedy.
# Every table shows these; the world and the allocator only where a sweep varied them.
FIX_AXES = ("backend", "storage", "dtype", "sharing")
# The allocator's settings (glibc's tunables, memsweep.plan.jobs.ALLOCATOR): a user
# changes them too.
REMEDIES = (*FIX_AXES, *ALLOCATOR)
# The world a configuration measured (``Job.world``): configurations are compared within
# one world only. A table from before the column, or a null, holds the default world.
WORLD = "world"
# A model's arrays as rows of phase ``model``: each summed over the world's arrays. A world
# of several factors or modalities has per-array rows too (``A[0]``, ``B[2]``): a
# breakdown of these, never added to them.
MODEL_ARRAYS = ("A", "B", "C", "D")
# What "the whole configuration" means under each probe family, one probe each (figures
# of two probes are never added). Resident: the process's highest resident set by the
# kernel's peak, absolute (the import, the warm-up and the configuration). Traced: the
# traced peak above the post-import baseline (the import is not traced).
FOOTPRINTS = {
    "traced": (("summary", "all", "peak_bytes", probes.TRACEMALLOC),),
    "resident": (("summary", "all", "total_peak_bytes", probes.VMHWM),),
}


def with_world(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``world`` column, the default world where it is missing or null
    (the same frame, not a copy, where nothing is missing)."""
    if WORLD not in table:
        return table.assign(**{WORLD: DEFAULT_WORLD})
    if table[WORLD].isna().any():
        return table.assign(**{WORLD: table[WORLD].fillna(DEFAULT_WORLD)})
    return table


def world_of(config) -> str:
    """A configuration's world (item access), the default where it has none."""
    world = config.get(WORLD) if hasattr(config, "get") else None
    return DEFAULT_WORLD if world is None or pd.isna(world) else str(world)


def worlds(configs: pd.DataFrame) -> list[str]:
    """The worlds a table holds, the default first, then by name."""
    if not len(configs):
        return []
    held = configs[WORLD] if WORLD in configs else pd.Series([None])
    found = set(held.dropna().astype(str).unique())
    if held.isna().any():
        found.add(DEFAULT_WORLD)
    return sorted(found, key=lambda w: (w != DEFAULT_WORLD, w))


def several_worlds(configs: pd.DataFrame) -> bool:
    """Whether a sweep measured more than one world (its findings then name each one's)."""
    return len(worlds(configs)) > 1


def varied(configs: pd.DataFrame, column: str) -> bool:
    """Whether a table holds more than one value of ``column``."""
    return column in configs and configs[column].nunique(dropna=False) > 1


def shown_axes(configs: pd.DataFrame) -> list[str]:
    """The axes a table of ``configs`` names each row by: :data:`FIX_AXES`, the world
    where there are several, the allocator where a sweep varied it."""
    return [*FIX_AXES, *(c for c in (WORLD, *ALLOCATOR) if varied(with_world(configs), c))]


def names_world(config, configs: pd.DataFrame | None = None) -> bool:
    """Whether words about ``config`` name its world: where it is not the default, or where
    ``configs`` (the sweep's) hold several."""
    return world_of(config) != DEFAULT_WORLD or (configs is not None and several_worlds(configs))


def selector(phase, operation, metric, probe) -> dict:
    return {"phase": phase, "operation": operation, "metric": metric, "probe": probe}


def selector_text(sel: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sel.items() if v is not None) + " status=ok"


Resolution = dict[str, float]  # probe -> bytes (``harness.calibration.resolution``)


def is_resolved(value: pd.Series, resolution: pd.Series) -> pd.Series:
    """Whether each figure reaches its resolution (none known: it does)."""
    return resolution.isna() | (value.abs() >= resolution)


def mark(chosen: pd.DataFrame, resolution: Resolution | None) -> pd.DataFrame:
    """``chosen`` with ``resolution`` (its probe's, bytes; NaN for a probe not calibrated
    or a figure not in bytes) and ``resolved``."""
    limit = chosen.probe.map(resolution or {}).where(chosen.unit == "B").astype(float)
    return chosen.assign(resolution=limit, resolved=is_resolved(chosen.value, limit))


def rows(frame: pd.DataFrame, sel: dict, resolution: Resolution | None = None) -> pd.DataFrame:
    """The ok rows a selector names (``operation`` None: any operation), marked."""
    mask = frame.status == "ok"
    for key, value in sel.items():
        if value is not None:
            mask &= frame[key] == value
    return mark(frame[mask], resolution)


def summarised_by(metric: str | None) -> str:
    """How a configuration's rows of ``metric`` become one figure: a peak by its maximum
    (a temporary that only some steps make is not lost to a median of zeros), anything
    else (times, levels) by its median (one slow or noisy call does not set a figure)."""
    return "max" if str(metric or "").endswith("peak_bytes") else "median"


def per_config(
    frame: pd.DataFrame, sel: dict, resolution: Resolution | None = None
) -> pd.DataFrame:
    """One row per configuration: its config columns, its value over steps and repeats,
    their ``median`` and ``p95``, the row count, the probe's ``resolution`` and whether the
    value is ``resolved``.

    The value is :func:`summarised_by` its metric (the first call is the ``compile``
    phase, apart from the steps).
    """
    chosen = rows(frame, sel, resolution)
    columns = [c for c in CONFIG if c in frame]
    if chosen.empty:
        return pd.DataFrame(
            columns=[*columns, "value", "median", "p95", "rows", "resolution", "resolved"]
        )
    grouped = chosen.groupby("config_id")
    values = pd.DataFrame({
        "value": grouped.value.agg(summarised_by(sel.get("metric"))),
        "median": grouped.value.median(),
        "p95": grouped.value.quantile(0.95),  # one vectorised call: a lambda per group is slow
        "rows": grouped.value.size(),
        "resolution": grouped.resolution.max(),
    })  # fmt: skip
    values = values.assign(resolved=is_resolved(values.value, values.resolution))
    configs = chosen.drop_duplicates("config_id").set_index("config_id")[columns[1:]]
    return configs.join(values).reset_index()


def figure(row) -> float | Unresolved:
    """A per-configuration row's figure as the report may use it: its value, or, below
    its probe's resolution, the :class:`Unresolved` marker (shown ``< N``)."""
    return row["value"] if row.get("resolved", True) else Unresolved(row["resolution"])


def summed(parts: pd.DataFrame) -> tuple[float, float]:
    """The sum of some figures' values and the resolution of that sum.

    An unresolved part may be off by up to its resolution; the sum is resolved when those
    bounds together are within the calibration's tolerance of it, so an import of
    hundreds of MB plus a peak below resolution is still a figure. Returns
    ``(value, resolution)``; the resolution is NaN where every part is resolved.
    """
    value = float(parts.value.sum())
    unresolved = parts.resolution.where(~parts.resolved.astype(bool)).sum(min_count=1)
    return value, float(unresolved) / TOLERANCE


def configurations(frame: pd.DataFrame) -> pd.DataFrame:
    """Every configuration with at least one ok row: one row each, config columns only."""
    columns = [c for c in CONFIG if c in frame]
    return frame[frame.status == "ok"].drop_duplicates("config_id")[columns].reset_index(drop=True)


def value_of(table: pd.DataFrame, config_id: str) -> float | None:
    hit = table.loc[table.config_id == config_id, "value"]
    return None if hit.empty or pd.isna(hit.iloc[0]) else float(hit.iloc[0])


def figure_of(table: pd.DataFrame, config_id: str) -> float | Unresolved | None:
    """As :func:`value_of`, but a figure below its probe's resolution is :class:`Unresolved`."""
    hit = table[table.config_id == config_id]
    if hit.empty or pd.isna(hit.value.iloc[0]):
        return None
    found = figure(hit.iloc[0])
    return found if isinstance(found, Unresolved) else float(found)


def slice_of(table: pd.DataFrame, base: pd.Series, free: tuple[str, ...]) -> pd.DataFrame:
    """Configurations equal to ``base`` in every config column except those in ``free``."""
    fixed = [c for c in CONFIG if c in table and c not in (*free, "config_id", "states")]
    mask = np.ones(len(table), bool)
    for column in fixed:
        if column == WORLD:  # the default world where a table has none (older tables)
            held, wanted = with_world(table)[WORLD], world_of(base)
        else:
            held, wanted = table[column], base.get(column)
        # A null equals a null (a setting a table does not hold), never a value.
        same = held.isna() if wanted is None or pd.isna(wanted) else held == wanted
        mask &= same.fillna(False).to_numpy(bool)
    return table[mask]


def one_axis(configs: pd.DataFrame, base: pd.Series, axis: str) -> pd.DataFrame:
    """The configurations equal to ``base`` except in ``axis``: in its world too (a
    configuration of another world is never a one-axis change of it)."""
    if axis not in configs:
        return configs.iloc[0:0]
    near = slice_of(configs, base, (axis,))
    return near[differs(near[axis], base[axis])]


def differs(held: pd.Series, value) -> pd.Series:
    """Where ``held`` is another value than ``value``; a null equals a null (a setting a
    table does not hold), never a value."""
    if value is None or pd.isna(value):
        return held.notna()
    return (held != value) | held.isna()


def footprint(
    frame: pd.DataFrame, family: str, resolution: Resolution | None = None
) -> pd.DataFrame:
    """Per configuration: import + peak above the post-import baseline, in one probe
    family, with the sum's ``resolution`` and ``resolved`` (:func:`summed`)."""
    kept = ["config_id", "value", "resolution", "resolved"]
    parts = pd.concat(
        [per_config(frame, selector(*part), resolution)[kept] for part in FOOTPRINTS[family]]
    )
    complete = parts.groupby("config_id").config_id.transform("size") == len(FOOTPRINTS[family])
    totals = [
        (config_id, *summed(group)) for config_id, group in parts[complete].groupby("config_id")
    ]
    total = pd.DataFrame(totals, columns=["config_id", "value", "resolution"])
    return total.assign(resolved=is_resolved(total.value, total.resolution))


def footprint_text(family: str) -> str:
    parts = FOOTPRINTS[family]
    return " + ".join(f"{p[0]}/{p[2]} [{p[3]}]" for p in parts)


def _model_bytes(frame: pd.DataFrame, config_id: str) -> pd.Series:
    chosen = rows(frame, selector("model", None, "bytes", probes.EXACT))
    chosen = chosen[chosen.config_id == config_id]
    return chosen.groupby("operation").value.median()


def model_arrays(frame: pd.DataFrame, config_id: str) -> dict[str, float]:
    """Exact bytes of each model array (A, B, C, D) of one configuration, largest first:
    each summed over the world's arrays (the per-array rows, ``A[0]``…, are
    :func:`model_array_parts`, never added here)."""
    sizes = _model_bytes(frame, config_id)
    sizes = sizes[sizes.index.isin(MODEL_ARRAYS)].sort_values(ascending=False)
    return {str(k): float(v) for k, v in sizes.items()}


def model_array_parts(frame: pd.DataFrame, config_id: str) -> dict[str, dict[str, float]]:
    """Per model array (A, B, C, D) of a world with several, its per-array rows' exact
    bytes (``{"A": {"A[0]": …, "A[1]": …}}``, in index order): a breakdown of
    :func:`model_arrays`, not an addition to it. Empty for a world of one array each."""
    found: dict[str, list[tuple[int, str, float]]] = {}
    for name, value in _model_bytes(frame, config_id).items():
        head, _, index = str(name).partition("[")
        if head in MODEL_ARRAYS and index.endswith("]") and index[:-1].isdigit():
            found.setdefault(head, []).append((int(index[:-1]), str(name), float(value)))
    return {head: {name: v for _, name, v in sorted(parts)} for head, parts in found.items()}


def config_label(row, world: bool = False) -> str:
    """A configuration in words (item access: ``row.dtype`` would be the Series' own dtype),
    its world where it is not the default, or wherever ``world`` says (several worlds)."""
    agents = int(row["agents"])
    named = world or names_world(row)
    return (
        f"{row['backend']}, {row['storage']}, {row['dtype']}, grid {row['grid']} "
        f"(N={row['states']}), {agents} agent{'s' if agents != 1 else ''}, {row['sharing']}"
    ) + (f", world {world_of(row)}" if named else "")


class Tables:
    """Per-configuration figures of one measurement table, computed once each, marked
    against the probes' ``resolution`` (none given: nothing is marked)."""

    def __init__(self, frame: pd.DataFrame, resolution: Resolution | None = None):
        frame = with_world(frame)  # a table from before the world column: the default's
        self.frame = frame
        self.resolution = resolution or {}
        self.configs = configurations(frame)
        self._cache: dict[tuple, pd.DataFrame] = {}
        # The rows of each (phase, metric), split once: a selector's rows are then looked
        # for among a few hundred, not the whole table (a report asks ~100 selectors).
        self._parts = dict(tuple(frame.groupby(["phase", "metric"], sort=False)))

    def per_config(self, sel: dict) -> pd.DataFrame:
        key = tuple(sel.items())
        if key not in self._cache:
            part = (sel.get("phase"), sel.get("metric"))
            source = self.frame if None in part else self._parts.get(part, self.frame.iloc[0:0])
            self._cache[key] = per_config(source, sel, self.resolution)
        return self._cache[key]

    def footprint(self, family: str) -> pd.DataFrame:
        key = ("footprint", family)
        if key not in self._cache:
            self._cache[key] = footprint(self.frame, family, self.resolution)
        return self._cache[key]

    def value(self, sel: dict, config_id: str) -> float | None:
        return value_of(self.per_config(sel), config_id)

    def figure(self, sel: dict, config_id: str) -> float | Unresolved | None:
        return figure_of(self.per_config(sel), config_id)
