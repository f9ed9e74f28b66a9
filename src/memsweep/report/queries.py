"""The query layer over the tidy measurement table: select rows, reduce them to one
figure per configuration, and name configurations.

A *selector* names rows by (phase, operation, metric, probe); :func:`per_config`
turns them into one median per configuration. Every figure in the report goes
through here, so a figure and the rows it came from are always one selector apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memsweep.harness import probes
from memsweep.results.schema import CONFIG_FIELDS

# Every column that names a configuration (``layout`` is an outcome, not a setting).
CONFIG = [f.name for f in CONFIG_FIELDS if f.name != "layout"]
# The axes a fix may change; the others (grid, agents, ...) set the problem, not the remedy.
FIX_AXES = ("backend", "storage", "dtype", "sharing")
# What "the whole configuration" means under each probe family. Resident: the import
# (the process's unique pages it added) plus the kernel's peak above the post-import
# baseline. Traced: the traced peak above that baseline (the import is not traced).
FOOTPRINTS = {
    "traced": (("summary", "all", "peak_bytes", probes.TRACEMALLOC),),
    "resident": (("import", "load", "resident_bytes", probes.USS),
                 ("summary", "all", "peak_bytes", probes.VMHWM)),
}  # fmt: skip


def selector(phase, operation, metric, probe) -> dict:
    return {"phase": phase, "operation": operation, "metric": metric, "probe": probe}


def selector_text(sel: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sel.items() if v is not None) + " status=ok"


def rows(frame: pd.DataFrame, sel: dict) -> pd.DataFrame:
    """The ok rows a selector names (``operation`` None: any operation)."""
    mask = frame.status == "ok"
    for key, value in sel.items():
        if value is not None:
            mask &= frame[key] == value
    return frame[mask]


def per_config(frame: pd.DataFrame, sel: dict) -> pd.DataFrame:
    """One row per configuration: its config columns, the median value and the row count.

    The median runs over steps and repeats, so one slow or noisy call does not set a figure.
    """
    chosen = rows(frame, sel)
    columns = [c for c in CONFIG if c in frame]
    if chosen.empty:
        return pd.DataFrame(columns=[*columns, "value", "rows"])
    values = chosen.groupby("config_id").value.agg(value="median", rows="size")
    configs = chosen.drop_duplicates("config_id").set_index("config_id")[columns[1:]]
    return configs.join(values).reset_index()


def configurations(frame: pd.DataFrame) -> pd.DataFrame:
    """Every configuration with at least one ok row: one row each, config columns only."""
    columns = [c for c in CONFIG if c in frame]
    return frame[frame.status == "ok"].drop_duplicates("config_id")[columns].reset_index(drop=True)


def value_of(table: pd.DataFrame, config_id: str) -> float | None:
    hit = table.loc[table.config_id == config_id, "value"]
    return None if hit.empty or pd.isna(hit.iloc[0]) else float(hit.iloc[0])


def slice_of(table: pd.DataFrame, base: pd.Series, free: tuple[str, ...]) -> pd.DataFrame:
    """Configurations equal to ``base`` in every config column except those in ``free``."""
    fixed = [c for c in CONFIG if c in table and c not in (*free, "config_id", "states")]
    mask = np.ones(len(table), bool)
    for column in fixed:
        mask &= (table[column] == base[column]).to_numpy()
    return table[mask]


def footprint(frame: pd.DataFrame, family: str) -> pd.DataFrame:
    """Per configuration: import + peak above the post-import baseline, in one probe family."""
    total = None
    for parts in FOOTPRINTS[family]:
        part = per_config(frame, selector(*parts))[["config_id", "value"]]
        total = part if total is None else total.merge(part, on="config_id")
        if "value_x" in total:
            total = total.assign(value=total.value_x + total.value_y)[["config_id", "value"]]
    return total


def footprint_text(family: str) -> str:
    parts = FOOTPRINTS[family]
    return " + ".join(f"{p[0]}/{p[2]} [{p[3]}]" for p in parts)


def model_arrays(frame: pd.DataFrame, config_id: str) -> dict[str, float]:
    """Exact bytes of each model array (A, B, C, D) of one configuration, largest first."""
    chosen = rows(frame, selector("model", None, "bytes", probes.EXACT))
    chosen = chosen[chosen.config_id == config_id]
    sizes = chosen.groupby("operation").value.median().sort_values(ascending=False)
    return {str(k): float(v) for k, v in sizes.items()}


def config_label(row) -> str:
    """A configuration in words (item access: ``row.dtype`` would be the Series' own dtype)."""
    agents = int(row["agents"])
    return (
        f"{row['backend']}, {row['storage']}, {row['dtype']}, grid {row['grid']} "
        f"(N={row['states']}), {agents} agent{'s' if agents != 1 else ''}, {row['sharing']}"
    )


class Tables:
    """Per-configuration figures of one measurement table, computed once each."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.configs = configurations(frame)
        self._cache: dict[tuple, pd.DataFrame] = {}

    def per_config(self, sel: dict) -> pd.DataFrame:
        key = tuple(sel.items())
        if key not in self._cache:
            self._cache[key] = per_config(self.frame, sel)
        return self._cache[key]

    def footprint(self, family: str) -> pd.DataFrame:
        key = ("footprint", family)
        if key not in self._cache:
            self._cache[key] = footprint(self.frame, family)
        return self._cache[key]

    def value(self, sel: dict, config_id: str) -> float | None:
        return value_of(self.per_config(sel), config_id)
