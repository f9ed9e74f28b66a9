"""Two measurement sets, configuration by configuration: what improved, what regressed.

A change is claimed only where the data can carry it, so that a comparison of a set with
itself, or of two runs of the same code, reads *unchanged* everywhere:

- memory (summary rows in bytes): the difference must exceed both the probe's calibrated
  resolution (below it a probe cannot tell two figures apart) and a share of BASE;
- time: the per-step samples must differ by a Mann–Whitney U test *and* their medians by
  more than the threshold's factor, as asv does (a significant 1 % is noise in practice,
  a 20 % difference of two noisy samples may be chance);
- precision: any change in action agreement (a different action is a different
  behaviour), or a maximum error that moved by more than a factor of ten (errors of
  float32 arithmetic wander within an order of magnitude from run to run).

Figures of different probes are never compared with each other: every row of the result
is one metric by one probe, BASE against NEW. Rendering is in ``compare_render``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from memsweep.results import baselines
from memsweep.results.schema import CONFIG_FIELDS, SchemaError, read_frame

THRESHOLD = 0.05  # a share of BASE (memory) or a factor of 1 + it (time)
SIGNIFICANCE = 0.01  # the Mann–Whitney U test's two-sided p below which times differ
ERROR_FACTOR = 10.0  # how far a maximum error must move to be a change
# Errors below float64's rounding step are rounding: read as it, so 0 against 1e-17 is
# no change of a factor of infinity.
ERROR_FLOOR = float(np.finfo(np.float64).eps)
# Configuration columns that match nothing: the id hashes every axis (the compared one
# too), states follow from grid, and the layout is what a backend made, not a setting.
NOT_KEYS = ("config_id", "states", "layout")
CONFIG = [f.name for f in CONFIG_FIELDS if f.name not in NOT_KEYS]
LABELLED = ("backend", "storage", "dtype", "grid", "agents", "sharing")

IMPROVED, REGRESSED, UNCHANGED, UNMEASURED = "improved", "regressed", "unchanged", "unmeasured"
ONLY_BASE, ONLY_NEW = "only in BASE", "only in NEW"
KINDS = ("memory", "time", "precision")  # the order of the tables
VERDICTS = (REGRESSED, IMPROVED, UNMEASURED, ONLY_BASE, ONLY_NEW, UNCHANGED)
COLUMNS = ["label", "kind", "metric", "probe", "unit", "base", "new", "ratio", "p_value"]


class CompareError(ValueError):
    """Input that cannot be compared (no such set, an absent axis value, nothing matched)."""


@dataclass
class MeasurementSet:
    """Rows to compare, where they came from, and the calibration found beside them."""

    name: str
    frame: pd.DataFrame
    calibration: Path | None


def locate(spec: str, results: str | Path = "results") -> tuple[Path, Path | None]:
    """The measurements a name stands for and the calibration beside them (or None): a
    ``.parquet`` file, a results folder (its ``measurements.parquet``, else its
    ``measurements/`` tree), a Hive tree itself, or a baseline saved under ``results``."""
    path = Path(spec)
    if path.is_file():
        return path, _beside(path.parent)
    if path.is_dir():
        for inner in (path / "measurements.parquet", path / "measurements"):
            if inner.exists():
                return inner, _beside(path)
        if any(path.rglob("*.parquet")):
            return path, _beside(path.parent)
        raise CompareError(f"{spec}: no measurements.parquet or measurements/ in this folder")
    saved = baselines.folder(results, spec) if baselines.valid(spec) else None
    if saved is not None and (saved / baselines.MEASUREMENTS).is_file():
        return saved / baselines.MEASUREMENTS, _beside(saved)
    raise CompareError(f"{spec}: no such file, folder or baseline (see memsweep baseline list)")


def _beside(folder: Path) -> Path | None:
    found = folder / "calibration.parquet"
    return found if found.is_file() else None


def load(spec: str, results: str | Path = "results") -> MeasurementSet:
    path, calibration = locate(spec, results)
    try:
        frame = read_frame(path)
    except (SchemaError, OSError) as error:
        raise CompareError(f"{spec}: {error}") from None
    if frame.empty:
        raise CompareError(f"{spec}: holds no measurements")
    return MeasurementSet(spec, frame, calibration)


def split(
    measured: MeasurementSet, axis: str, values: list[str]
) -> tuple[MeasurementSet, MeasurementSet]:
    """BASE and NEW as two values of one column of one set (compared as text, so that
    ``pymdp_version=1.0.4`` and ``grid=20`` are written as they read)."""
    frame = measured.frame
    if axis not in frame or axis in ("value", "repeat", "step"):
        raise CompareError(f"--axis {axis}: not a column of {measured.name}")
    if len(values) != 2 or values[0] == values[1]:
        raise CompareError(f"--axis {axis}: give two different values, BASE,NEW")
    text = frame[axis].astype(str)
    sides = []
    for value in values:
        if not (text == value).any():
            held = sorted(text.unique())
            held = ", ".join(held[:10]) + (", …" if len(held) > 10 else "")
            raise CompareError(f"--axis {axis}={value}: absent from {measured.name} ({held})")
        name = f"{measured.name} {axis}={value}"
        sides.append(MeasurementSet(name, frame[text == value], measured.calibration))
    return sides[0], sides[1]


# Figures per configuration -------------------------------------------------------------
def _figures(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per configuration, metric and probe: its figure (median of its rows; NaN
    where it was not measured) and, for time, its per-step samples."""
    summary = frame[(frame.phase == "summary") & (frame.unit == "B")].assign(kind="memory")
    precision = frame[frame.phase == "precision"].assign(kind="precision")
    parts = [summary, precision]
    by = [*keys, "kind", "metric", "probe", "unit"]
    value = frame.value.where(frame.status == "ok")
    figures = (
        pd.concat(parts)
        .assign(value=value)
        .groupby(by, dropna=False, observed=True)
        .value.median()
        .reset_index()
    )
    return pd.concat([figures, _step_samples(frame, keys)], ignore_index=True)


def _step_samples(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Each configuration's per-step times: a step's time is the sum of its operations'
    calls (a jitted backend makes one call, ``step``; the others three)."""
    calls = frame[(frame.phase == "step") & (frame.metric == "call_seconds")]
    calls = calls[calls.status == "ok"]
    if calls.empty:
        return pd.DataFrame(columns=[*keys, "kind", "metric", "probe", "unit", "value", "samples"])
    steps = calls.groupby([*keys, "probe", "repeat", "step"], dropna=False).value.sum()
    samples = steps.groupby([*keys, "probe"], dropna=False).agg(list).rename("samples")
    table = samples.reset_index()
    return table.assign(
        kind="time",
        metric="step_seconds",
        unit="s",
        value=[float(np.median(s)) for s in table.samples],
    )


# Verdicts --------------------------------------------------------------------------------
def judge(row, resolution: dict[str, float] | None, threshold: float) -> tuple[str, float, str]:
    """A matched figure's verdict, the p-value (time only, else NaN), and why."""
    base, new = row["base"], row["new"]
    if pd.isna(base) or pd.isna(new):
        return UNMEASURED, np.nan, "no BASE figure" if pd.isna(base) else "no NEW figure"
    if row["kind"] == "time":
        return _judge_time(row["samples_base"], row["samples_new"], threshold)
    if row["kind"] == "precision":
        return _judge_precision(row["metric"], base, new), np.nan, ""
    floor = (resolution or {}).get(row["probe"], 0.0)
    delta = new - base
    if abs(delta) <= floor:
        return UNCHANGED, np.nan, "within the probe's resolution" if delta else ""
    if abs(delta) <= threshold * abs(base):
        return UNCHANGED, np.nan, "within the threshold"
    return (IMPROVED if delta < 0 else REGRESSED), np.nan, ""


def _judge_time(base: list, new: list, threshold: float) -> tuple[str, float, str]:
    p = float(stats.mannwhitneyu(base, new, alternative="two-sided").pvalue)
    ratio = np.median(new) / np.median(base) if np.median(base) > 0 else np.inf
    factor = 1 + threshold
    if not p < SIGNIFICANCE:  # NaN too: samples that cannot be ranked tell nothing
        return UNCHANGED, p, f"not significant (p ≥ {SIGNIFICANCE:g})"
    if 1 / factor <= ratio <= factor:
        return UNCHANGED, p, "within the threshold"
    return (IMPROVED if ratio < 1 else REGRESSED), p, ""


def _judge_precision(metric: str, base: float, new: float) -> str:
    if metric == "action_agreement":  # any other action is another behaviour
        return UNCHANGED if new == base else IMPROVED if new > base else REGRESSED
    ratio = max(new, ERROR_FLOOR) / max(base, ERROR_FLOOR)
    if ratio > ERROR_FACTOR:
        return REGRESSED
    return IMPROVED if ratio < 1 / ERROR_FACTOR else UNCHANGED


# The comparison --------------------------------------------------------------------------
@dataclass
class Comparison:
    """Every figure of every configuration, BASE against NEW, with its verdict."""

    base: str
    new: str
    axis: str | None
    threshold: float
    resolution: dict[str, float] | None  # probe -> bytes; None: no calibration found
    table: pd.DataFrame  # COLUMNS + verdict, note, then the configuration's columns
    resolution_from: str = ""  # the calibration file(s) the resolution came from

    def counts(self) -> dict[str, int]:
        held = self.table.verdict.value_counts()
        return {verdict: int(held.get(verdict, 0)) for verdict in VERDICTS}

    @property
    def keys(self) -> list[str]:
        """The columns configurations were matched on."""
        return [c for c in CONFIG if c in self.table and c != self.axis]

    def of(self, verdict: str) -> pd.DataFrame:
        return self.table[self.table.verdict == verdict]


def compare(
    base: MeasurementSet,
    new: MeasurementSet,
    axis: str | None = None,
    threshold: float = THRESHOLD,
    resolution: dict[str, float] | None = None,
    resolution_from: str = "",
) -> Comparison:
    """Match configurations on every configuration column but ``axis`` and judge each
    figure; configurations on one side only are rows of their own."""
    keys = [c for c in CONFIG if c != axis]
    configs = [s.frame[keys].drop_duplicates() for s in (base, new)]
    sides = configs[0].merge(configs[1], how="outer", on=keys, indicator=True)
    if not (sides._merge == "both").any():
        raise CompareError(f"no configuration of {base.name} matches one of {new.name}")
    by = [*keys, "kind", "metric", "probe", "unit"]
    figures = _figures(base.frame, keys).merge(
        _figures(new.frame, keys), how="outer", on=by, suffixes=("_base", "_new")
    )
    matched = sides[sides._merge == "both"][keys]
    figures = figures.rename(columns={"value_base": "base", "value_new": "new"}).merge(matched)
    judged = [judge(row, resolution, threshold) for _, row in figures.iterrows()]
    figures[["verdict", "p_value", "note"]] = pd.DataFrame(
        judged, columns=["verdict", "p_value", "note"], index=figures.index
    )
    figures["ratio"] = figures.new / figures.base.where(figures.base != 0)
    only = sides[sides._merge != "both"].assign(
        verdict=lambda t: np.where(t._merge == "left_only", ONLY_BASE, ONLY_NEW), note=""
    )
    table = pd.concat([figures, only.drop(columns="_merge")], ignore_index=True)
    table["label"] = labels(table, keys)
    table = table.reindex(columns=[*COLUMNS, "verdict", "note", *keys])
    order = {
        "_verdict": table.verdict.map({v: i for i, v in enumerate(VERDICTS)}),
        "_kind": table.kind.map({k: i for i, k in enumerate(KINDS)}),
    }
    table = table.assign(**order).sort_values([*order, *keys, "metric", "probe"], kind="stable")
    table = table.drop(columns=list(order)).reset_index(drop=True)
    return Comparison(base.name, new.name, axis, threshold, resolution, table, resolution_from)


def labels(table: pd.DataFrame, keys: list[str]) -> list[str]:
    """Configurations in words (``pymdp-jax · dense · float64 · G=20 · 10 agents ·
    private``), with every other setting that varies among them as ``name=value``."""
    varying = [k for k in keys if k not in LABELLED and table[k].nunique(dropna=False) > 1]
    words = {"grid": "G={}".format, "agents": lambda n: f"{n} agent{'s' if n != 1 else ''}"}
    found = []
    for _, row in table.iterrows():
        parts = [words.get(k, str)(row[k]) for k in LABELLED if k in keys]
        found.append(" · ".join(parts + [f"{k}={row[k]}" for k in varying]))
    return found
