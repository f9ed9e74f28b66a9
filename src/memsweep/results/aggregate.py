"""All measurement files -> one table (results/measurements.parquet) and summary tables.

Every file is validated against the schema; a file that fails (truncated, not Parquet,
wrong columns or types, no rows, columns that disagree with its folders) is named in
the failures table with its path, the configuration its path names and the reason,
never read as a result. Every output is written atomically.

The summary tables (one per metric of ``schema.SUMMARY_METRICS``) have one column per
probe, headed ``metric [probe] (unit)``: the CSV in the measurements' own units (B, s),
the Markdown in MB or ms, each saying so in its header.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from memsweep.files import atomic
from memsweep.plan.sweep import CORE_AXES
from memsweep.results.schema import (
    MEASUREMENT_SCHEMA,
    NOISY_TIMING,
    SUMMARY_METRICS,
    SchemaError,
    path_columns,
    read_file,
    to_frame,
)

# How the Markdown tables show each unit of schema.SUMMARY_METRICS: (scale, label).
SHOWN_AS = {"B": (1e6, "MB"), "s": (1e-3, "ms"), "1": (1, "1")}
# Model settings shown beside the axes where they vary (pymdp_version: a provenance
# column, which holds the setting; a job's config_id differs by it too).
EXTRA_COLUMNS = (
    "world",
    "noise_kind",
    "obs_noise",
    "move_success",
    "seed",
    "steps",
    "repeats",
    "pymdp_version",
)


def collect(files) -> tuple[pa.Table, list[dict]]:
    """Read and validate every file; return the good rows and the files that failed."""
    tables, invalid = [], []
    for path in files:
        try:
            tables.append(read_file(path))
        except SchemaError as error:
            reason = f"invalid measurement file: {error}"
            invalid.append({**path_columns(path), "path": str(path), "reason": reason})
    table = pa.concat_tables(tables) if tables else MEASUREMENT_SCHEMA.empty_table()
    return table, invalid


def config_columns(frame: pd.DataFrame) -> list[str]:
    """The axes that identify a configuration, plus any model setting that varies."""
    varying = [c for c in EXTRA_COLUMNS if c in frame and frame[c].nunique() > 1]
    return [c for c in CORE_AXES if c in frame] + varying


def heading(metric: str, probe: str, unit: str) -> str:
    """A measured column's header: what, by which probe, in which unit."""
    return f"{metric} [{probe}] ({unit})"


def summary_table(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per configuration, one column per probe that measured ``metric``, in the
    metric's unit (:data:`SUMMARY_METRICS`) as its header says."""
    rows = frame[(frame.phase == "summary") & (frame.metric == metric) & (frame.status == "ok")]
    keys = config_columns(frame)
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "config_id"])
    table = rows.pivot_table(
        index=[*keys, "config_id"], columns="probe", values="value", aggfunc="median"
    )
    table.columns = [heading(metric, probe, SUMMARY_METRICS[metric]) for probe in table.columns]
    if metric == "step_seconds_cv":
        # A timing whose repeats disagree by more than this is flagged, not hidden.
        table[f"noisy (cv > {NOISY_TIMING:g})"] = table.max(axis=1) > NOISY_TIMING
    return table.reset_index().sort_values(keys, kind="stable")


def shown(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A summary table in the units people read (MB, ms), its headers saying so."""
    unit = SUMMARY_METRICS[metric]
    scale, label = SHOWN_AS[unit]
    suffix = f" ({unit})"
    measured = [c for c in table.columns if c.startswith(f"{metric} [") and c.endswith(suffix)]
    renamed = {c: c.removesuffix(suffix) + f" ({label})" for c in measured}
    return table.assign(**{c: table[c] / scale for c in measured}).rename(columns=renamed)


def failures_table(frame: pd.DataFrame, plan: pd.DataFrame, invalid: list[dict]) -> pd.DataFrame:
    """Everything that was not measured, and why: planned out, failed, or unreadable."""
    keys = [c for c in CORE_AXES if c in plan]
    planned_out = plan[plan.status != "run"][[*keys, "config_id", "status", "reason"]]
    failed = frame[frame.status == "failed"][
        [*keys, "config_id", "status", "reason"]
    ].drop_duplicates()
    unreadable = None
    if invalid:
        unreadable = pd.DataFrame(invalid).assign(status="invalid")
        unreadable["config_id"] = [_planned_id(plan, path) for path in unreadable.path]
    parts = [p for p in (planned_out, failed, unreadable) if p is not None and not p.empty]
    columns = [*keys, "config_id", "status", "reason", "path"]
    return (
        pd.concat(parts, ignore_index=True).reindex(columns=columns)
        if parts
        else pd.DataFrame(columns=columns)
    )


def _planned_id(plan: pd.DataFrame, path: str) -> str | None:
    """The id of the planned job whose output ``path`` is (plan paths are relative)."""
    if "path" not in plan:
        return None
    posix = Path(path).as_posix()
    for planned, config_id in zip(plan.path, plan.config_id, strict=True):
        if isinstance(planned, str) and (posix == planned or posix.endswith("/" + planned)):
            return config_id
    return None


def write_atomic(table: pa.Table, path: str | os.PathLike) -> None:
    with atomic(path) as temporary:
        pq.write_table(table, temporary)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic(path) as temporary:
        frame.to_csv(temporary, index=False)


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic(path) as temporary:
        temporary.write_text(text)


def run(measurement_files, plan_path, out, tables_dir) -> pd.DataFrame:
    table, invalid = collect(measurement_files)
    write_atomic(table, out)
    frame = to_frame(table)
    plan = pd.read_parquet(plan_path)
    tables_dir = Path(tables_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    for metric in SUMMARY_METRICS:
        summary = summary_table(frame, metric)
        write_csv(summary, tables_dir / f"{metric}.csv")
        markdown = shown(summary, metric).to_markdown(index=False, floatfmt=".4g") + "\n"
        write_text(markdown, tables_dir / f"{metric}.md")
    failures = failures_table(frame, plan, invalid)
    write_csv(failures, tables_dir / "failures.csv")
    write_text(failures.to_markdown(index=False) + "\n", tables_dir / "failures.md")
    print(f"{len(measurement_files)} files, {table.num_rows} rows, {len(invalid)} invalid")
    for item in invalid:
        print(f"INVALID {item['path']}: {item['reason']}")
    return frame
