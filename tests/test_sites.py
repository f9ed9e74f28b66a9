"""Allocation sites: every job names the lines that hold the build's bytes (tracemalloc),
and ``memsweep profile`` the lines alive at the heap's peak (memray).

A stand-in backend allocates known arrays at known lines: a ``KEPT`` array in its
agents' constructor, kept, and a ``TEMPORARY`` one inside each call, freed before the
call returns. It runs as jobs do (the real worker and the real ``memsweep profile``,
with a copy of ``src/`` holding its module first on PYTHONPATH); the sites must be its
lines, with its bytes.
"""

from __future__ import annotations

import inspect
import json
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from memsweep.harness import probes, profile, sites, supervisor
from memsweep.plan.jobs import Job
from memsweep.results import schema

from .conftest import memsweep
from .test_caps import project_with_backend, stand_in_backend, stand_in_reference

KEPT = 8 << 20  # bytes each agent keeps from its construction
TEMPORARY = 24 << 20  # bytes alive inside each call: with the kept ones, the heap's peak
HEADER = 4096  # what an array holds beside its buffer, at most (its header, ~112 B)

SITEY = f"""
import numpy as np

from memsweep.agents.base import Backend, Beliefs, Population


class SitePopulation(Population):
    operations = ("infer_states",)

    def __init__(self, model, spec):
        self.states = len(model.D)
        self.kept = np.ones({KEPT} // 8)  # the kept array

    def reset(self):
        pass

    def call(self, operation, step):
        temporary = np.ones({TEMPORARY} // 8)  # the temporary
        temporary.sum()

    def beliefs(self):
        return Beliefs(np.full(self.states, 1 / self.states), np.full(5, 0.2), (0,))
""" + stand_in_backend("sitey", "SitePopulation")
STEPS = 4


def line_of(marker: str) -> int:
    return next(i for i, line in enumerate(SITEY.splitlines(), 1) if marker in line)


KEPT_SITE = f"memsweep/agents/sitey.py:{line_of('# the kept array')} (__init__)"
TEMPORARY_SITE = f"memsweep/agents/sitey.py:{line_of('# the temporary')} (call)"
# Large enough that the model's arrays, not the few small lists that hold them (A, B, C, D
# and their dependencies, each a site of its own beyond the top TOP), make its bytes.
GRID = 6
JOB = Job("sitey", "dense", "float64", GRID, 1, "shared", 1, steps=STEPS, repeats=1)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sites")
    patch = pytest.MonkeyPatch()
    patch.setenv("PYTHONPATH", str(project_with_backend(folder, "sitey", SITEY)))
    reference = stand_in_reference(folder / "reference.npz", GRID, STEPS)
    yield folder, reference
    patch.undo()


@pytest.fixture(scope="module")
def measured(stand_in) -> pd.DataFrame:
    folder, reference = stand_in
    out = folder / "m.parquet"
    outcome = supervisor.measure_job(JOB, out, reference, log=folder / "log")
    assert outcome.ok, (folder / "log").read_text()
    return schema.read_frame(out)


@pytest.fixture(scope="module")
def profiled(stand_in) -> tuple[pd.DataFrame, Path]:
    folder, reference = stand_in
    out, page = folder / "profile.parquet", folder / "profile.html"
    axes = ["--backend", "sitey", "--storage", "dense", "--dtype", "float64", "--grid", str(GRID),
            "--agents", "1", "--sharing", "shared", "--policy-len", "1", "--steps", str(STEPS),
            "--repeats", "1"]  # fmt: skip
    paths = ["--reference", str(reference), "--out", str(out), "--flamegraph", str(page)]
    memsweep("profile", *axes, *paths)
    return schema.read_frame(out), page


def site_rows(frame: pd.DataFrame, operation: str, metric: str) -> pd.Series:
    rows = frame[(frame.operation == operation) & (frame.metric == metric)]
    return rows.set_index("site").value


# tracemalloc: the build's sites, in every job ---------------------------------------------
def test_the_agents_top_site_is_the_line_that_allocated_their_bytes(measured):
    agents = site_rows(measured[measured.phase == "build"], "agents", "site_bytes")
    assert agents.index[0] == KEPT_SITE
    assert KEPT <= agents.iloc[0] <= KEPT + HEADER
    assert site_rows(measured[measured.phase == "build"], "agents", "site_count")[KEPT_SITE] >= 1
    assert agents.is_monotonic_decreasing


def test_the_sites_hold_what_the_build_retained(measured):
    """The sites of the second build hold the first build's traced bytes (no JAX cache
    here): every byte the model and the agents kept has a site."""
    for operation in ("model", "agents"):
        built = measured[(measured.phase == "build") & (measured.operation == operation)]
        held = site_rows(built, operation, "site_bytes").sum()
        retained = built[built.metric == "retained_bytes"].value.iloc[0]
        assert held == pytest.approx(retained, rel=0.05), operation


def test_only_site_rows_name_a_site_and_none_is_absolute(measured):
    named = measured[measured.site.notna()]
    assert set(named.metric) == {"site_bytes", "site_count"}
    assert set(named.phase) == {"build"} and set(named.probe) == {probes.TRACEMALLOC}
    assert not named.site.str.startswith("/").any()
    assert not named.site.str.contains("memsweep/harness/").any()  # the harness's own
    assert len(named[named.metric == "site_bytes"]) <= 2 * sites.TOP


# memray: the heap's peak, in a profile ------------------------------------------------------
def test_the_profile_names_the_temporary_and_the_kept_array(profiled):
    frame, _ = profiled
    alive = site_rows(frame, "high_water", "alive_bytes")
    assert alive.index[0] == TEMPORARY_SITE
    assert TEMPORARY <= alive[TEMPORARY_SITE] <= TEMPORARY + HEADER
    assert KEPT <= alive[KEPT_SITE] <= KEPT + HEADER
    assert site_rows(frame, "high_water", "alive_count")[TEMPORARY_SITE] == 1
    whole = frame[frame.site.isna()].set_index("metric").value
    assert whole["peak_bytes"] >= KEPT + TEMPORARY
    assert whole["flamegraph_fraction"] == 1.0  # a small heap: every stack is drawn
    assert set(frame.phase) == {"profile"} and set(frame.probe) == {probes.MEMRAY}
    assert not frame.site.dropna().str.contains("memsweep/harness/").any()


def test_the_profile_writes_memrays_flame_graph(profiled):
    _, page = profiled
    text = page.read_text()
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert "sitey.py" in text  # the stand-in's frames are in the graph's data


def test_a_flame_graph_that_is_no_html_file_is_refused(tmp_path):
    axes = ["--backend", "lean", "--storage", "dense", "--dtype", "float64", "--grid", "3",
            "--agents", "1", "--sharing", "shared", "--policy-len", "1"]  # fmt: skip
    out = ["--out", str(tmp_path / "p.parquet"), "--flamegraph", str(tmp_path / "p.svg")]
    result = memsweep("profile", *axes, *out, check=False)
    assert result.returncode == 2 and "must end in .html" in result.stderr


# Naming --------------------------------------------------------------------------------------
def test_library_frames_are_skipped_and_paths_are_relative():
    import copy

    import pymdp

    assert sites.relative(np.__file__) == "numpy/__init__.py"
    assert sites.is_library(np.__file__) and sites.is_library(copy.__file__)
    assert sites.is_library("<frozen importlib._bootstrap>")
    assert not sites.is_library(pymdp.__file__)
    assert sites.relative(pymdp.__file__) == "pymdp/__init__.py"
    assert not Path(sites.relative(copy.__file__)).is_absolute()
    assert sysconfig.get_paths()["stdlib"] not in sites.relative(copy.__file__)


def _outer():
    def inner():
        return 1  # a line of inner

    return inner


def test_a_site_names_the_innermost_function_holding_its_line():
    filename = inspect.getsourcefile(_outer)
    lines, first = inspect.getsourcelines(_outer)
    inner_line = first + next(i for i, line in enumerate(lines) if "a line of inner" in line)
    assert sites.function_at(filename, inner_line) == "inner"
    assert sites.function_at(filename, first + len(lines) - 1) == "_outer"
    assert sites.function_at(filename, 1) == "<module>"
    assert sites.name(filename, inner_line).endswith(f"test_sites.py:{inner_line} (inner)")


XLA_BUFFER = [
    "tsl::port::AlignedMalloc(unsigned long, std::align_val_t)",
    "xla::(anonymous namespace)::AlignedAllocator::Allocate(unsigned long, unsigned long) const",
    "xla::CpuDeviceMemory::AllocateInto(unsigned long, tsl::AsyncValuePtr<xla::CpuDeviceMemory>)",
    "void absl::lts_20260107::internal_any_invocable::RemoteInvoker<false, void, "
    "xla::CpuPjRtRawLoadedExecutable::Execute(xla::ExecuteOptions const&) &&::$_5&&>"
    "(absl::lts_20260107::internal_any_invocable::TypeErasedState*)",
    "Eigen::ThreadPoolTempl<tsl::thread::EigenEnvironment>::WorkerLoop(int)",
    "start_thread",
]
XLA_COMPILE = [
    "operator new(unsigned long)",
    "void* google::protobuf::Arena::DefaultConstruct<xla::HloPassMetadata>(google::protobuf::"
    "Arena*)",
    "xla::HloModuleMetadata::RecordPassStart()",
]


def test_native_only_allocations_are_named_by_their_first_telling_function():
    assert profile.native_function(XLA_BUFFER) == "xla::CpuPjRtRawLoadedExecutable::Execute"
    assert profile.native_function(XLA_COMPILE) == "xla::HloModuleMetadata::RecordPassStart"
    assert profile.native_function(["malloc", "start_thread"]) == "malloc"


# The checkpoint's choice ---------------------------------------------------------------------
def summary_row(backend, config_id, value, status="ok", probe=probes.VMHWM, metric="peak_bytes"):
    return {"backend": backend, "config_id": config_id, "phase": "summary",
            "operation": "all", "metric": metric, "probe": probe, "value": value, "unit": "B",
            "status": status}  # fmt: skip


def test_targets_are_each_backends_largest_peak_above_its_baseline(tmp_path):
    rows = [
        summary_row("lean", "l1", 10.0), summary_row("lean", "l2", 30.0),
        summary_row("lean", "l3", 99.0, status="failed"),  # not measured: never profiled
        summary_row("lean", "l4", 500.0, probe=probes.TRACEMALLOC),  # another probe's figure
        summary_row("lean", "l5", 800.0, metric="total_peak_bytes"),  # the baseline included
        summary_row("pymdp-numpy", "n1", 20.0), summary_row("pymdp-numpy", "n2", 5.0),
        summary_row("pymdp-jax", "gone", 70.0),  # no longer in the plan
    ]  # fmt: skip
    measurements = tmp_path / "measurements.parquet"
    pq.write_table(schema.to_table(rows), measurements)
    names = ("l1", "l2", "l3", "l4", "l5", "n1", "n2")
    paths = {name: f"results/profiles/{name}.parquet" for name in names}
    out = tmp_path / "targets.txt"
    assert profile.write_targets(measurements, paths, out) == [paths["l2"], paths["n1"]]
    assert out.read_text().split() == [paths["l2"], paths["n1"]]


# The schema ------------------------------------------------------------------------------------
def test_a_file_from_before_the_site_column_reads_with_it_null(tmp_path):
    row = summary_row("lean", "x", 1.0)
    table = schema.to_table([row]).drop_columns(["site"])
    pq.write_table(table, tmp_path / "old.parquet")
    read = schema.read_frame(tmp_path / "old.parquet")
    assert read.columns.tolist() == schema.COLUMNS and read.site.isna().all()
    table = schema.to_table([{**row, "site": "pymdp/agent.py:1 (f)"}])
    assert schema.validate(table).column("site").to_pylist() == ["pymdp/agent.py:1 (f)"]


def test_profile_paths_mirror_the_measurements(tmp_path):
    from memsweep.workflow import Pipeline

    from .conftest import tiny_config

    pipeline = Pipeline(tiny_config())
    paths = json.loads(pipeline.profile_paths())
    assert set(paths) == {p.job.config_id for p in pipeline.runnable.values()}
    for measurement, planned in pipeline.runnable.items():
        expected = measurement.replace("results/measurements/", "results/profiles/", 1)
        assert paths[planned.job.config_id] == expected
    targets = tmp_path / "targets.txt"
    targets.write_text("".join(f"{p}\n" for p in sorted(paths.values())[:1]))
    chosen = sorted(paths.values())[0]
    assert pipeline.profile_files(targets) == [chosen, chosen.removesuffix(".parquet") + ".html"]


def test_a_comprehensions_line_has_one_name_for_either_probe():
    """memray's frame names a list comprehension ``<listcomp>``, tracemalloc's carries no
    name: both name the line by the function that holds it (``pymdp_numpy.py``'s private
    copies are a comprehension in ``arrays``)."""
    from memsweep.agents import pymdp_numpy

    source, start = inspect.getsourcelines(pymdp_numpy)
    line = next(i for i, text in enumerate(source, start) if "[a.copy() for a in" in text)
    as_memray = sites.name(pymdp_numpy.__file__, line, "<listcomp>")
    assert as_memray == sites.name(pymdp_numpy.__file__, line)
    assert "<listcomp>" not in as_memray


class _Record:
    """A stand-in for one of memray's records: its Python stack by ``stack_id``."""

    reads = 0

    def __init__(self, stack_id, stack, native=()):
        self.stack_id, self._stack, self._native = stack_id, stack, native

    def stack_trace(self):
        _Record.reads += 1
        return self._stack

    def hybrid_stack_trace(self):
        return [(frame, "", 0) for frame in self._native]


def test_a_python_stack_is_read_once_per_memray_stack_id():
    """Records that share a ``stack_id`` share their Python stack: it is read once and
    gives each the same site; a native-only stack is named by its native frames."""
    pymdp_file = str(Path(np.__file__).parents[1] / "pymdp" / "agent.py")
    stack = [("asarray", np.__file__, 10), ("__init__", pymdp_file, 263)]
    records = [_Record(7, stack), _Record(7, stack), _Record(0, [], ["xla::Execute(int)"])]
    known, _Record.reads = {}, 0
    found = [profile.site_of(record, known=known) for record in records]
    assert found[0] == found[1] == "pymdp/agent.py:263 (__init__)"
    assert found[2] == "<native> xla::Execute"
    assert _Record.reads == 2  # once for id 7, once for the native-only record
    assert profile.site_of(records[2], native=False, known=known) == profile.UNNAMED
