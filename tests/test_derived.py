"""Derived figures checked by value: a backend whose memory is known to the byte.

A stand-in backend keeps exactly ``KEPT`` bytes more after every call (a float64 array
appended to a list) and allocates a ``TEMPORARY`` one inside each call, freed before it
returns. It runs as jobs do, in the real worker under the supervisor, with a copy of
``src/`` that holds its module first on PYTHONPATH; the figures the harness derives from
its probes must then be what the backend did.
"""

from __future__ import annotations

import pandas as pd
import pytest

from memsweep.harness import probes, supervisor
from memsweep.plan.jobs import Job
from memsweep.results import schema

from .test_caps import project_with_backend, stand_in_backend, stand_in_reference

KEPT = 1 << 20  # bytes kept per call (one call per step)
TEMPORARY = 3 << 20  # bytes of the temporary inside each call
STEPS = 12
# Lists made and dropped in each call, before the arrays: more than the youngest
# generation's threshold (700 in CPython 3.11, 2000 in 3.14), so every call collects.
CONTAINERS = 10_000
# What a call holds beside the arrays' buffers: an ndarray's header (~112 B), the list's
# slot and, at the window's end, the interpreter's free lists refilled by the call's
# lists (80 list objects, ~4.5 kB; a collection of every generation empties them).
OVERHEAD = 8192

RETAIN = f"""
import numpy as np

from memsweep.agents.base import Backend, Beliefs, Population


class RetainPopulation(Population):
    operations = ("infer_states",)

    def __init__(self, model, spec):
        self.states, self.kept = len(model.D), []

    def reset(self):
        pass

    def call(self, operation, step):
        containers = [[] for _ in range({CONTAINERS})]  # enough to start collections
        del containers
        temporary = np.ones({TEMPORARY} // 8)  # alive with the new kept array: the peak
        self.kept.append(np.ones({KEPT} // 8))
        del temporary

    def beliefs(self):
        return Beliefs(np.full(self.states, 1 / self.states), np.full(5, 0.2), (0,))
""" + stand_in_backend("retain", "RetainPopulation")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("derived")
    src = project_with_backend(folder, "retain", RETAIN)
    patch = pytest.MonkeyPatch()
    patch.setenv("PYTHONPATH", str(src))
    try:
        job = Job("retain", "dense", "float64", 3, 1, "shared", 1, steps=STEPS, repeats=1)
        reference = stand_in_reference(folder / "reference.npz", 3, STEPS)
        out = folder / "m.parquet"
        outcome = supervisor.measure_job(job, out, reference, log=folder / "log")
    finally:
        patch.undo()
    assert outcome.ok, (folder / "log").read_text()
    return schema.read_frame(out)


def rows(frame, phase, metric, probe, operation=None) -> pd.DataFrame:
    selected = frame[(frame.phase == phase) & (frame.metric == metric) & (frame.probe == probe)]
    if operation is not None:
        selected = selected[selected.operation == operation]
    return selected


def one(frame, phase, metric, probe, operation=None) -> float:
    selected = rows(frame, phase, metric, probe, operation)
    assert len(selected) == 1, (phase, metric, probe, operation, len(selected))
    assert selected.status.iloc[0] == "ok", selected.reason.iloc[0]
    return float(selected.value.iloc[0])


def test_every_row_is_ok(run):
    not_ok = run[run.status != "ok"]
    # The agents hold nothing when built: a page-counting probe cannot resolve them, and
    # their per-agent figure says so (the traced one is there, and small).
    unresolved = not_ok[not_ok.metric == "per_agent_bytes"]
    assert set(unresolved.probe) <= {probes.ANON, probes.USS}
    assert unresolved.reason.str.contains("under one page").all()
    assert one(run, "summary", "per_agent_bytes", probes.TRACEMALLOC, "all") < OVERHEAD
    # One repeat: no spread of the step time to state, and the row says why.
    spread = not_ok[not_ok.metric == "step_seconds_cv"]
    assert spread.reason.str.startswith("needs 2 repeats").all()
    # The kernel's peak may be unavailable on a machine without clear_refs; it says why.
    assert set(not_ok.drop([*unresolved.index, *spread.index]).probe) <= {probes.VMHWM}
    assert not_ok.reason.notna().all()


def test_the_growth_slope_is_what_each_step_keeps(run):
    slope = one(run, "growth", "traced_growth_per_100_steps_bytes", probes.TRACEMALLOC)
    assert slope == pytest.approx(100 * KEPT, rel=0.01)
    levels = rows(run, "growth", "traced_bytes", probes.TRACEMALLOC).sort_values("step")
    assert list(levels.step) == list(range(STEPS))
    steps = levels.value.diff().dropna()
    assert ((steps - KEPT).abs() < OVERHEAD).all(), list(steps)


def test_each_call_keeps_its_array_and_peaks_with_its_temporary(run):
    calls = rows(run, "step", "retained_bytes", probes.TRACEMALLOC, "infer_states")
    assert len(calls) == STEPS - 1  # step 0 is the first call, in the compile phase
    assert ((calls.value - KEPT).abs() < OVERHEAD).all(), list(calls.value)
    peaks = rows(run, "step", "call_peak_bytes", probes.TRACEMALLOC, "infer_states")
    assert ((peaks.value - (KEPT + TEMPORARY)).abs() < OVERHEAD).all(), list(peaks.value)
    first = one(run, "compile", "call_peak_bytes", probes.TRACEMALLOC, "infer_states")
    assert first >= KEPT + TEMPORARY


def test_cleanup_releases_what_the_agents_kept(run):
    kept = STEPS * KEPT
    retained = one(run, "cleanup", "retained_bytes", probes.TRACEMALLOC, "drop_agents")
    assert abs(retained) < 0.01 * kept, retained
    released = one(run, "cleanup", "released_fraction", probes.TRACEMALLOC, "drop_agents")
    assert 0.99 < released <= 1.0, released


def test_collections_are_counted(run):
    counts = run[(run.phase == "gc") & (run.metric == "collections_per_100_steps")]
    assert sorted(counts.operation) == ["gen0", "gen1", "gen2"]
    assert (counts.value >= 0).all() and set(counts.unit) == {"count"}
    young = one(run, "gc", "collections_per_100_steps", probes.GC, "gen0")
    assert young >= 100  # at least one per call, one call per step
    pause = one(run, "gc", "pause_seconds_per_100_steps", probes.GC, "all")
    assert pause > 0


def test_resident_growth_follows_the_kept_pages(run):
    # Every kept array is written (np.ones): its pages are resident, anonymous memory.
    slope = one(run, "growth", "anon_growth_per_100_steps_bytes", probes.ANON)
    assert slope == pytest.approx(100 * KEPT, rel=0.05)


def test_the_summary_peak_is_at_least_every_window_peak(run):
    traced = one(run, "summary", "peak_bytes", probes.TRACEMALLOC, "all")
    windows = run[(run.metric == "call_peak_bytes") & (run.probe == probes.TRACEMALLOC)]
    assert traced >= windows.value.max()
    assert traced >= STEPS * KEPT + TEMPORARY  # everything kept, and the last temporary
    kernel = rows(run, "summary", "peak_bytes", probes.VMHWM, "all")
    if kernel.status.iloc[0] != "ok":
        pytest.skip(f"no kernel peak here: {kernel.reason.iloc[0]}")
    windows = run[(run.metric == "call_peak_bytes") & (run.probe == probes.VMHWM)]
    assert (windows.status == "ok").all()
    assert kernel.value.iloc[0] >= windows.value.max()
    assert kernel.value.iloc[0] >= STEPS * KEPT  # the kept arrays are resident
