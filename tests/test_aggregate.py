"""The aggregate of a small real tree: the same data whichever way it is read, summary
tables whose headers give their units, and summary rows that add up.

Two jobs of the shared tiny sweep (``.test/config/config.yaml``: grid 4, two shared
agents, 4 steps) are measured by the real supervisor into their Hive paths, then
``aggregate.run`` (what the aggregate rule runs) makes ``measurements.parquet`` and the
tables. Every figure checked here is compared with another reading, never a constant.
"""

from __future__ import annotations

import ast
import re

import pandas as pd
import pytest

from memsweep.harness import probes, supervisor
from memsweep.harness.measure import PAGE_BYTES, PAGE_COUNTED
from memsweep.plan import sweep
from memsweep.results import aggregate, schema

from .conftest import ROOT, tiny_config

MEASURED = ("lean/csr", "pymdp-numpy/dense")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("aggregate")
    config = tiny_config()
    config["model"]["repeats"] = 2  # two repeats: the timing's spread is a figure
    planned = sweep.plan(config)
    plan_path = root / "results/sweep/plan.parquet"
    sweep.write_plan(planned, plan_path)
    chosen = {f"{p.job.backend}/{p.job.storage}": p for p in planned if p.status == "run"}
    chosen = {key: chosen[key] for key in MEASURED}
    reference = root / "reference.npz"
    supervisor.make_reference_file(next(iter(chosen.values())).job, reference)
    measurements = root / "results/measurements"
    outcomes = {}
    for job, path in ((p.job, p.path) for p in chosen.values()):
        outcome = supervisor.measure_job(job, measurements / path, reference)
        assert outcome.ok, outcome.reason
        outcomes[job.config_id] = outcome
    files = schema.measurement_files(measurements)
    assert len(files) == len(MEASURED)
    out, tables = root / "results/measurements.parquet", root / "results/tables"
    aggregate.run(files, plan_path, out, tables)
    return {"measurements": measurements, "out": out, "tables": tables, "outcomes": outcomes}


@pytest.fixture(scope="module")
def frame(tree) -> pd.DataFrame:
    return schema.read_frame(tree["out"])


def one(frame: pd.DataFrame, config_id, phase, operation, metric, probe) -> pd.Series:
    chosen = frame[
        (frame.config_id == config_id)
        & (frame.phase == phase)
        & (frame.operation == operation)
        & (frame.metric == metric)
        & (frame.probe == probe)
    ]
    assert len(chosen) == 1, (config_id, phase, operation, metric, probe, len(chosen))
    return chosen.iloc[0]


# The same data, whichever way it is read --------------------------------------------------


def test_the_tree_and_the_aggregate_read_with_the_same_types(tree, frame):
    from_tree = schema.read_frame(tree["measurements"])
    with_pandas = schema.to_frame(pd.read_parquet(tree["measurements"]))  # folders: categories
    assert frame.columns.tolist() == schema.COLUMNS
    for way in (from_tree, with_pandas):
        assert way.dtypes.equals(frame.dtypes)
        key = ["config_id", "phase", "operation", "metric", "probe", "repeat", "step"]
        pd.testing.assert_frame_equal(
            way.sort_values(key, ignore_index=True), frame.sort_values(key, ignore_index=True)
        )
    assert str(frame.dtypes["repeat"]) == str(frame.dtypes["step"]) == "Int64"
    assert frame.dtypes["grid"] == frame.dtypes["agents"] == "int64"


def test_repeat_and_step_are_null_unless_a_value_belongs_to_one(frame):
    calls = frame.phase.isin(["compile", "step"])
    levels = (frame.phase == "growth") & frame.metric.isin(
        [f"{p.level_metric}_bytes" for p in probes.levels()]
    )
    tied = frame[calls | levels]
    assert tied.repeat.notna().all() and tied.step.notna().all()
    assert (tied.repeat >= 0).all() and (tied.step >= 0).all()
    untied = frame[~(calls | levels)]
    assert untied.repeat.isna().all() and untied.step.isna().all()


# Summary rows that add up ------------------------------------------------------------------


def test_the_resident_footprint_is_the_baseline_plus_the_peak_above_it(tree, frame):
    if not probes.KernelPeak().available:
        pytest.skip("no kernel peak on this machine (/proc/self/clear_refs)")
    for config_id, outcome in tree["outcomes"].items():
        read = {
            metric: one(frame, config_id, "summary", "all", metric, probes.VMHWM).value
            for metric in ("baseline_bytes", "peak_bytes", "total_peak_bytes")
        }
        assert read["total_peak_bytes"] >= read["peak_bytes"] >= 0
        above = read["total_peak_bytes"] - read["baseline_bytes"]
        assert above == pytest.approx(read["peak_bytes"], abs=PAGE_BYTES)
        # The baseline holds what the import added; the supervisor's view of the child's
        # whole life (import and writing included) holds the total.
        imported = one(frame, config_id, "import", "load", "anon_bytes", probes.ANON).value
        assert read["baseline_bytes"] >= imported > 0
        assert read["total_peak_bytes"] <= outcome.peak_rss_bytes


def test_the_summary_per_agent_bytes_are_the_builds(frame):
    agents = dict(zip(frame.config_id, frame.agents, strict=False))
    summarised = [name for name, probe in probes.REGISTRY.items() if probe.summarised]
    for config_id, count in agents.items():
        for probe in (p.name for p in probes.levels()):
            built = one(frame, config_id, "build", "agents", "per_agent_bytes", probe)
            grown = one(frame, config_id, "build", "agents", "growth_bytes", probe).value
            below_a_page = probe in PAGE_COUNTED and grown < PAGE_BYTES
            assert (built.status == "unavailable") == below_a_page, (config_id, probe, grown)
            if below_a_page:
                assert "under one page" in built.reason and pd.isna(built.value)
            else:
                assert built.value == pytest.approx(grown / count)
            if probe in summarised:
                summary = one(frame, config_id, "summary", "all", "per_agent_bytes", probe)
                columns = ["value", "status", "reason"]
                pd.testing.assert_series_equal(summary[columns], built[columns], check_names=False)


# Tables that state their units -----------------------------------------------------------

HEADING = re.compile(r"^(?P<metric>\w+) \[(?P<probe>\w+)\] \((?P<unit>\w+)\)$")


def markdown_table(path) -> pd.DataFrame:
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return pd.DataFrame(cells[2:], columns=cells[0])


@pytest.mark.parametrize("metric", list(schema.SUMMARY_METRICS))
def test_every_measured_column_of_a_summary_table_names_its_unit(tree, frame, metric):
    unit = schema.SUMMARY_METRICS[metric]
    scale, shown_unit = aggregate.SHOWN_AS[unit]
    csv = pd.read_csv(tree["tables"] / f"{metric}.csv")
    markdown = markdown_table(tree["tables"] / f"{metric}.md")
    config = aggregate.config_columns(frame) + ["config_id"]
    assert csv.columns[: len(config)].tolist() == markdown.columns[: len(config)].tolist()
    flags = [c for c in csv.columns if c.startswith("noisy")]
    measured = csv.columns[len(config) :].drop(flags)
    assert len(measured) > 0
    shown = markdown.columns[len(config) :].drop(flags)
    for csv_column, md_column in zip(measured, shown, strict=True):
        in_csv, in_md = HEADING.match(csv_column), HEADING.match(md_column)
        assert in_csv and in_md, (csv_column, md_column)
        assert in_csv["metric"] == in_md["metric"] == metric
        assert in_csv["probe"] == in_md["probe"]
        assert (in_csv["unit"], in_md["unit"]) == (unit, shown_unit)
        assert csv.config_id.tolist() == markdown.config_id.tolist()
        for config_id, written, md_text in zip(
            csv.config_id, csv[csv_column], markdown[md_column], strict=True
        ):
            stored = one(frame, config_id, "summary", "all", metric, in_csv["probe"])
            if stored.status != "ok":
                assert pd.isna(written)
                continue
            assert written == pytest.approx(stored.value)  # the CSV: the unit of the data
            assert float(md_text) == pytest.approx(stored.value / scale, rel=1e-3)


def test_the_tables_are_the_ones_the_aggregate_rule_declares(tree):
    rule = (ROOT / "workflow/rules/aggregate.smk").read_text()
    declared = ast.literal_eval(re.search(r"TABLES = (\[.*?\])", rule, re.S).group(1))
    written = {path.stem for path in tree["tables"].glob("*.csv")}
    assert sorted(declared) == sorted(written) == sorted([*schema.SUMMARY_METRICS, "failures"])


def test_a_noisy_timing_is_flagged(tree, frame):
    table = pd.read_csv(tree["tables"] / "step_seconds_cv.csv")
    column = f"noisy (cv > {schema.NOISY_TIMING:g})"
    spreads = frame[(frame.phase == "summary") & (frame.metric == "step_seconds_cv")]
    assert len(spreads) == len(MEASURED) and (spreads.status == "ok").all()
    for _, row in table.iterrows():
        spread = one(frame, row.config_id, "summary", "all", "step_seconds_cv", "perf_counter")
        assert row[column] == (spread.value > schema.NOISY_TIMING)
