"""Corrupt measurement files are listed as failures, with their path and reason, never read.

A tree as the workflow leaves it (the tiny sweep's plan, its three runnable files), with
two of the planned files broken (one truncated, one with another schema) and more broken
files beside them. ``aggregate.run`` (what the aggregate rule runs) must read the good
file only and name every broken one in ``results/tables/failures.*``.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memsweep.plan import sweep
from memsweep.results import aggregate, schema

from .conftest import tiny_config


def record(job, value: float) -> pa.Table:
    """A measurement file's rows for ``job`` (two summary values)."""
    base = {**job.columns(), "layout": "objects", "phase": "summary", "operation": "all",
            "unit": "B", "status": "ok", "repeat": None, "step": None}  # fmt: skip
    return schema.to_table(
        [
            {**base, "metric": "peak_bytes", "probe": "tracemalloc", "value": value},
            {**base, "metric": "per_agent_bytes", "probe": "tracemalloc", "value": value / 2},
        ]
    )


@pytest.fixture(scope="module")
def aggregated(tmp_path_factory):
    root = tmp_path_factory.mktemp("corrupt")
    planned = sweep.plan(tiny_config())
    plan_path = root / "results/sweep/plan.parquet"
    sweep.write_plan(planned, plan_path)
    runnable = {p.job.backend + "/" + p.job.storage: p for p in planned if p.status == "run"}
    assert sorted(runnable) == ["lean/csr", "lean/dense", "pymdp-numpy/dense"]
    good, truncated, wrong = (runnable[k] for k in ("lean/dense", "lean/csr", "pymdp-numpy/dense"))

    schema.write_measurements(record(good.job, 5e6), root / good.path)
    # Truncated: a real file cut in half (a job killed while copying it, a full disk).
    schema.write_measurements(record(truncated.job, 7e6), root / truncated.path)
    data = (root / truncated.path).read_bytes()
    (root / truncated.path).write_bytes(data[: len(data) // 2])
    # A Parquet file of another schema where a measurement should be.
    (root / wrong.path).parent.mkdir(parents=True)
    pq.write_table(pa.table({"colour": ["red"], "value": [1.0]}), root / wrong.path)

    folder = (root / good.path).parent
    extra = {
        "not parquet": folder / "policy_len=2.parquet",
        "empty": folder / "policy_len=3.parquet",
        "wrong types": folder / "policy_len=4.parquet",
        "another job's": folder / "policy_len=5.parquet",
    }
    extra["not parquet"].write_bytes(b"not parquet at all")
    pq.write_table(record(good.job, 1.0).schema.empty_table(), extra["empty"])
    deeper = dataclasses.replace(good.job, policy_len=4)  # as its name says
    words = (
        record(deeper, 1.0)
        .drop_columns(["value"])
        .append_column("value", pa.array(["big", "bigger"]))
    )
    pq.write_table(words, extra["wrong types"])
    pq.write_table(record(good.job, 1.0), extra["another job's"])  # says policy_len=1

    files = [root / p.path for p in runnable.values()] + list(extra.values())
    out, tables = root / "results/measurements.parquet", root / "results/tables"
    frame = aggregate.run(files, plan_path, out, tables)
    return {
        "root": root, "frame": frame, "out": out, "tables": tables, "good": good,
        "broken": {"truncated": root / truncated.path, "wrong schema": root / wrong.path, **extra},
        "ids": {"truncated": truncated.job.config_id, "wrong schema": wrong.job.config_id},
    }  # fmt: skip


REASONS = {
    "truncated": "not a readable Parquet file",
    "wrong schema": "missing columns",
    "not parquet": "not a readable Parquet file",
    "empty": "no rows",
    "wrong types": "column 'value': Failed to parse string",
    "another job's": "column policy_len=['1'] but its path says policy_len=5",
}


def test_only_the_good_file_is_read_as_results(aggregated):
    frame = aggregated["frame"]
    assert set(frame.config_id) == {aggregated["good"].job.config_id}
    assert len(frame) == 2 and sorted(frame.value) == [2.5e6, 5e6]
    written = schema.read_measurements(aggregated["out"]).to_pandas()
    assert set(written.config_id) == {aggregated["good"].job.config_id}
    peaks = pd.read_csv(aggregated["tables"] / "peak_bytes.csv")
    assert list(peaks.config_id) == [aggregated["good"].job.config_id]


def test_every_broken_file_is_listed_with_its_path_and_reason(aggregated):
    failures = pd.read_csv(aggregated["tables"] / "failures.csv")
    invalid = failures[failures.status == "invalid"].set_index("path")
    broken = {kind: str(path) for kind, path in aggregated["broken"].items()}
    assert sorted(invalid.index) == sorted(broken.values())
    for kind, path in broken.items():
        reason = invalid.loc[path, "reason"]
        assert reason.startswith(f"invalid measurement file: {path}: "), reason
        assert REASONS[kind] in reason, (kind, reason)
    # The configuration each path names, and the planned job's id where it was planned.
    truncated = invalid.loc[broken["truncated"]]
    assert (truncated.backend, truncated.storage, truncated.grid) == ("lean", "csr", 4)
    assert truncated.config_id == aggregated["ids"]["truncated"]
    assert invalid.loc[broken["wrong schema"], "config_id"] == aggregated["ids"]["wrong schema"]
    assert invalid.loc[broken["empty"], "backend"] == "lean"
    markdown = (aggregated["tables"] / "failures.md").read_text()
    for path in broken.values():
        assert path in markdown


def test_the_planned_out_configuration_is_still_listed(aggregated):
    failures = pd.read_csv(aggregated["tables"] / "failures.csv")
    unsupported = failures[failures.status == "unsupported"]
    assert list(zip(unsupported.backend, unsupported.storage, strict=True)) == [
        ("pymdp-numpy", "csr")
    ]


def test_a_file_that_disagrees_with_its_folder_is_refused_alone(tmp_path):
    # Written outside the Hive tree (so the column is kept), then moved into the wrong folder.
    job = sweep.plan(tiny_config())[0].job
    loose = schema.write_measurements(record(job, 1.0), tmp_path / "loose.parquet")
    misplaced = tmp_path / "backend=lean/grid=4/policy_len=1.parquet"
    misplaced.parent.mkdir(parents=True)
    loose.rename(misplaced)
    assert job.backend == "pymdp-numpy"
    with pytest.raises(schema.SchemaError, match="path says backend=lean"):
        schema.read_file(misplaced)
