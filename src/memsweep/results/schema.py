"""The one table schema every writer and reader of measurements uses.

A measurement file is tidy and long: one row per measured value, named by
``phase``/``operation``/``metric``, with the ``probe`` that made it and its
``unit``. Files written inside a Hive tree (``…/backend=lean/grid=20/…``)
leave out the columns their folders already hold, as Hive readers
(pandas, pyarrow, duckdb) expect; :func:`read_measurements` puts them back, and
:func:`to_frame` gives the same pandas types however the rows were read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from memsweep.files import atomic
from memsweep.plan.jobs import LATER, RECORDED, column_types

if TYPE_CHECKING:  # pandas is imported where a frame is made: the harness never needs it
    import pandas as pd

# Columns that describe the configuration: one per Job setting, plus the job's id, its
# states and its layout (memsweep.plan.jobs.column_types gives their order and types).
CONFIG_FIELDS: list[pa.Field] = [
    pa.field(name, {str: pa.string(), int: pa.int64(), float: pa.float64()}[kind])
    for name, kind in column_types().items()
]

# Columns of one measured value.
VALUE_FIELDS: list[pa.Field] = [
    pa.field("repeat", pa.int64()),  # null where a value is not tied to one repeat
    pa.field("step", pa.int64()),  # null where a value is not tied to one step
    pa.field("phase", pa.string()),
    pa.field("operation", pa.string()),
    pa.field("metric", pa.string()),
    pa.field("probe", pa.string()),
    pa.field("value", pa.float64()),
    pa.field("unit", pa.string()),
    pa.field("status", pa.string()),  # ok | failed | unavailable
    pa.field("reason", pa.string()),
    # The allocation site a ``site_*`` or ``alive_*`` row is about (``pymdp/legacy/agent.py:172
    # (__init__)``); null in every other row.
    pa.field("site", pa.string()),
]

PROVENANCE_FIELDS: list[pa.Field] = [
    pa.field("memsweep_version", pa.string()),
    pa.field("pymdp_version", pa.string()),
    pa.field("numpy_version", pa.string()),
    pa.field("scipy_version", pa.string()),
    pa.field("jax_version", pa.string()),
    pa.field("python_version", pa.string()),
    pa.field("platform", pa.string()),
    pa.field("hostname", pa.string()),
    pa.field("started_at", pa.string()),
    # What held the job to its memory cap: the kernel's hard limit, if any, and the polls.
    pa.field("cap_enforcement", pa.string()),
]

# Columns added after files were written, and what such a file holds in them: no site;
# a setting's value before it existed (the grid world, the only one there was; glibc's
# own allocator settings).
LATER_COLUMNS = {"site": None} | {name: was for name, was in LATER.items() if not RECORDED[name]}
# Integer columns that may be empty: pandas's nullable Int64 in every frame (a numpy
# int64 cannot hold a null, so pandas would otherwise make them float64 with NaN).
NULLABLE_INTEGERS = ("repeat", "step")


def _pandas_metadata() -> dict[bytes, bytes]:
    """The note pyarrow leaves for pandas, naming the columns that read as Int64.

    Written into every file, so that ``pandas.read_parquet`` of a measurement file, of
    ``measurements.parquet`` or of the Hive tree gives these columns as Int64 too.
    """
    types = {"pandas_type": "int64", "numpy_type": "Int64", "metadata": None}
    columns = [{"name": name, "field_name": name, **types} for name in NULLABLE_INTEGERS]
    note = {"index_columns": [], "column_indexes": [], "columns": columns}
    return {b"pandas": json.dumps(note).encode()}


MEASUREMENT_SCHEMA = pa.schema(
    CONFIG_FIELDS + VALUE_FIELDS + PROVENANCE_FIELDS, metadata=_pandas_metadata()
)
COLUMNS = MEASUREMENT_SCHEMA.names

PHASES = (
    "model",
    "import",
    "build",
    "compile",
    "step",
    "growth",
    "cleanup",
    "gc",
    "precision",
    "summary",
    "failure",
    "profile",
)
# The headline figures of a job (phase ``summary``) and their units. The resident
# footprint is three rows of probe vmhwm: total_peak_bytes = baseline_bytes + peak_bytes.
SUMMARY_METRICS = {
    "baseline_bytes": "B",
    "peak_bytes": "B",
    "total_peak_bytes": "B",
    # The process's peak over its whole life (harness work after the steps included),
    # probe supervisor: what a memory cap or a scheduler sees.
    "job_peak_bytes": "B",
    "per_agent_bytes": "B",
    "model_bytes": "B",
    "step_seconds": "s",
    # Its spread over repeats: the aggregate flags a timing above NOISY_TIMING.
    "step_seconds_cv": "1",
}
NOISY_TIMING = 0.10
UNITS = ("B", "s", "1", "count")

_HIVE_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$")


class SchemaError(ValueError):
    """A file or table that does not follow :data:`MEASUREMENT_SCHEMA`."""


def hive_parts(path: str | os.PathLike) -> dict[str, str]:
    """The ``key=value`` folders of ``path`` (the file name itself is not a folder), each
    value URI-decoded as Hive writers encode it (memsweep.plan.sweep.folder_value)."""
    parts = {}
    for folder in Path(path).parent.parts:
        match = _HIVE_PART.match(folder)
        if match:
            parts[match.group(1)] = unquote(match.group(2))
    return parts


def _name_part(path: str | os.PathLike) -> dict[str, str]:
    """The ``key=value`` a file's name holds (``policy_len=1.parquet``), if any."""
    named = _HIVE_PART.match(Path(path).name.removesuffix(".parquet"))
    return {named.group(1): named.group(2)} if named else {}


def path_parts(path: str | os.PathLike) -> dict[str, str]:
    """Every ``key=value`` a measurement path names, folders and file name, as text."""
    return {**hive_parts(path), **_name_part(path)}


def path_columns(path: str | os.PathLike) -> dict[str, object]:
    """The configuration a measurement path names: its ``key=value`` folders and file name
    (``…/backend=lean/grid=4/policy_len=1.parquet``), typed as the schema types them
    where the text allows (what a file that cannot be read was meant to hold)."""
    parts = path_parts(path)
    typed: dict[str, object] = {}
    for key, value in parts.items():
        kind = MEASUREMENT_SCHEMA.field(key).type if key in COLUMNS else pa.string()
        try:
            typed[key] = pa.scalar(value).cast(kind).as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            typed[key] = value
    return typed


def to_table(rows: Iterable[Mapping]) -> pa.Table:
    """Rows (dicts) -> a table in the canonical schema; missing columns become null."""
    rows = list(rows)
    names = {key for row in rows for key in row}
    return to_table_columns({name: [row.get(name) for row in rows] for name in names})


def to_table_columns(columns: Mapping[str, list]) -> pa.Table:
    """Columns (name -> equal-length lists) -> a table in the canonical schema."""
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise SchemaError(f"unknown measurement columns: {sorted(unknown)}")
    count = len(next(iter(columns.values()), []))
    arrays = {name: columns.get(name, [None] * count) for name in COLUMNS}
    return pa.table(arrays, schema=MEASUREMENT_SCHEMA)


def validate(table: pa.Table, origin: str = "table") -> pa.Table:
    """Check and cast ``table`` to the canonical schema; raise :class:`SchemaError`."""
    for name, value in LATER_COLUMNS.items():
        if name not in table.column_names:
            field = MEASUREMENT_SCHEMA.field(name)
            column = pa.array([value] * table.num_rows, field.type)
            table = table.append_column(field, column)
    missing = [name for name in COLUMNS if name not in table.column_names]
    if missing:
        raise SchemaError(f"{origin}: missing columns {missing}")
    columns = []
    for field in MEASUREMENT_SCHEMA:
        try:
            columns.append(table.column(field.name).cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
            raise SchemaError(f"{origin}: column {field.name!r}: {error}") from error
    table = pa.Table.from_arrays(columns, schema=MEASUREMENT_SCHEMA)
    for column in ("phase", "metric", "probe", "unit", "status"):
        if table.column(column).null_count:
            raise SchemaError(f"{origin}: column {column!r} has empty values")
    for column, allowed in (("phase", PHASES), ("unit", UNITS)):
        unknown = set(table.column(column).to_pylist()) - set(allowed)
        if unknown:
            raise SchemaError(f"{origin}: unknown {column} values {sorted(unknown)}")
    for column in NULLABLE_INTEGERS:
        held = (v for v in table.column(column).to_pylist() if v is not None)
        lowest = min(held, default=None)
        if lowest is not None and lowest < 0:
            raise SchemaError(
                f"{origin}: column {column!r} holds {lowest}: counted from 0, and null where "
                f"a value is not tied to one {column} (files from before memsweep wrote "
                "null there used -1: measure them again)"
            )
    return table


def write_measurements(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write atomically: to a temporary name in the same folder, then rename.

    A reader never sees a half-written file under ``path``. Columns held by the
    path's Hive folders are checked against the path and left out of the file.
    """
    path = Path(path)
    table = validate(table, str(path))
    if table.num_rows == 0:
        raise SchemaError(f"{path}: no rows (a job's file holds at least its failure)")
    parts = hive_parts(path)
    for key, folder_value in parts.items():
        if key in table.column_names:
            values = {str(v) for v in table.column(key).to_pylist()}
            if values != {folder_value}:
                raise SchemaError(
                    f"{path}: column {key}={sorted(values)} but folder says {key}={folder_value}"
                )
    table = table.drop_columns([key for key in parts if key in table.column_names])
    with atomic(path) as temporary:
        pq.write_table(table, temporary)
    return path


def read_file(path: str | os.PathLike) -> pa.Table:
    """One measurement file, its Hive folder columns restored, validated.

    Refused (:class:`SchemaError`): a file Parquet cannot read (truncated, not Parquet),
    one with the wrong columns or types, one with no rows, one whose columns disagree
    with its path (a file in ``grid=6/`` that says grid 5 is another job's; the same for
    the ``key=value`` of its name).
    """
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise SchemaError(f"{path}: not a readable Parquet file ({error})") from error
    if table.num_rows == 0:
        raise SchemaError(f"{path}: no rows (a job's file holds at least its failure)")
    folders = hive_parts(path)
    for key, value in {**_name_part(path), **folders}.items():
        field = MEASUREMENT_SCHEMA.field(key) if key in COLUMNS else pa.field(key, pa.string())
        if key not in table.column_names and key not in folders:
            continue  # a file name that is not a column (the checks below say so)
        try:
            column = pa.array([value] * table.num_rows, pa.string()).cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise SchemaError(f"{path}: {key}={value} is not a {field.type}") from error
        if key not in table.column_names:
            table = table.append_column(key, column)
            continue
        try:
            held = {str(v) for v in table.column(key).cast(field.type).unique().to_pylist()}
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
            raise SchemaError(f"{path}: column {key}: {error}") from error
        if held != {str(column[0].as_py())}:
            said = f"{key}={value}"
            raise SchemaError(f"{path}: column {key}={sorted(held)} but its path says {said}")
    return validate(table, str(path))


def measurement_files(root: str | os.PathLike) -> list[Path]:
    """All finished measurement files under ``root`` (temporary names skipped)."""
    return sorted(
        p for p in Path(root).rglob("*.parquet") if not p.name.startswith(".") and p.is_file()
    )


def read_measurements(path: str | os.PathLike) -> pa.Table:
    """A file or a whole tree, in the canonical schema. Raises on any bad file."""
    path = Path(path)
    if path.is_file():
        return read_file(path)
    tables = [read_file(p) for p in measurement_files(path)]
    if not tables:
        return MEASUREMENT_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def to_frame(rows: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """Measurements as a pandas frame: the schema's columns, in its order and types.

    The same frame whichever way the rows were read: a table from
    :func:`read_measurements`, or a frame from any Parquet reader, whose Hive folder
    columns come back as categories (``pandas.read_parquet`` of the tree) and are cast
    back to the schema's types here. Strings are pandas's strings, floats float64, the
    configuration's integers int64 and :data:`NULLABLE_INTEGERS` Int64 (null: not tied
    to one repeat or step). Raises :class:`SchemaError` as :func:`validate` does.
    """
    if not isinstance(rows, pa.Table):
        rows = pa.Table.from_pandas(rows, preserve_index=False)
    return validate(rows).to_pandas()


def read_frame(path: str | os.PathLike) -> pd.DataFrame:
    """A file or a whole tree as :func:`to_frame` gives it (e.g. for the report)."""
    return to_frame(read_measurements(path))
