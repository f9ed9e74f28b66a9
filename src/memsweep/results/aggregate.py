"""All measurement files -> one table (results/measurements.parquet) and summary tables.

Every file is validated against the schema; a file that fails (truncated, not Parquet,
wrong columns or types, no rows, columns that disagree with its folders) is named in
the failures table with its path, the configuration its path names and the reason,
never read as a result. Every output is written atomically.
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
    SUMMARY_METRICS,
    SchemaError,
    path_columns,
    read_file,
)

# How the summary tables show each unit of schema.SUMMARY_METRICS: (scale, label).
SHOWN_AS = {"B": (1e6, "MB"), "s": (1e-3, "ms")}
# A table's file is named after its metric, except where the metric's name is unclear alone.
TABLE_NAMES = {"agent_bytes": "per_agent_bytes"}
EXTRA_COLUMNS = ("noise_kind", "obs_noise", "move_success", "seed", "steps", "repeats")


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


def summary_table(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per configuration, one column per probe that measured ``metric``."""
    rows = frame[(frame.phase == "summary") & (frame.metric == metric) & (frame.status == "ok")]
    keys = config_columns(frame)
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "config_id"])
    table = rows.pivot_table(
        index=[*keys, "config_id"], columns="probe", values="value", aggfunc="median"
    )
    table.columns = [f"{metric} [{probe}]" for probe in table.columns]
    return table.reset_index().sort_values(keys, kind="stable")


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


def _markdown(table: pd.DataFrame, scale: float = 1.0, unit: str = "") -> str:
    shown = table.copy()
    for column in shown.columns:
        if "[" in column and pd.api.types.is_numeric_dtype(shown[column]):
            shown[column] = shown[column] / scale
            shown = shown.rename(columns={column: f"{column} ({unit})"})
    return shown.to_markdown(index=False, floatfmt=".4g") + "\n"


def run(measurement_files, plan_path, out, tables_dir) -> pd.DataFrame:
    table, invalid = collect(measurement_files)
    write_atomic(table, out)
    frame = table.to_pandas()
    plan = pd.read_parquet(plan_path)
    tables_dir = Path(tables_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    for metric, unit in SUMMARY_METRICS.items():
        stem, (scale, label) = TABLE_NAMES.get(metric, metric), SHOWN_AS[unit]
        summary = summary_table(frame, metric)
        write_csv(summary, tables_dir / f"{stem}.csv")
        write_text(_markdown(summary, scale, label), tables_dir / f"{stem}.md")
    failures = failures_table(frame, plan, invalid)
    write_csv(failures, tables_dir / "failures.csv")
    write_text(failures.to_markdown(index=False) + "\n", tables_dir / "failures.md")
    print(f"{len(measurement_files)} files, {table.num_rows} rows, {len(invalid)} invalid")
    for item in invalid:
        print(f"INVALID {item['path']}: {item['reason']}")
    return frame
