"""Every rerun rule, proven with the real Snakemake: only what changed runs again.

The tiny sweep (``.test/config/config.yaml``) runs once for real in a temporary copy of
the workflow (``workdir``); each test then changes one thing (the config, a source file
of the copy, a sidecar) and reads which jobs a dry run would run, restoring what it
changed. The rules (docs/DESIGN.md, *Reruns*): a new axis value runs only its jobs; a
changed model setting reruns the jobs that use it; a setting promoted to an axis moves
every file into a new folder level; an edit to the harness reruns every measurement, an
edit to one backend only its jobs, an edit to the report only the report; a changed budget
runs only the jobs it makes runnable and a job that the cap stopped, once the cap is
above the peak it reached (``memsweep.harness.retry``, unit-tested first).
"""

from __future__ import annotations

import copy
import os
import shutil
import types
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from memsweep.harness import retry
from memsweep.plan import sweep
from memsweep.results.schema import read_measurements
from memsweep.workflow import Pipeline

from .test_workflow import (
    TINY,
    measure_outputs,
    planned,
    snakemake,
    write_config,
)

workflow = pytest.mark.workflow
# A reason as the supervisor words a job that its cap stopped (the real one: the last test).
STOPPED = "exceeded memory cap of {cap:g} MB at phase build (peak resident {peak} MB when stopped)"


# The marker and its sidecar, as memsweep measure and the workflow use them -------------
class TrackedJob:
    """One measure job's history as the workflow and ``memsweep measure`` see it: the
    workflow passes ``marker(cap, sidecar)`` as a param, Snakemake records it when the
    job runs, and a dry run reruns the job when the param differs from the recorded one."""

    def __init__(self, out: Path):
        self.out = out
        self.recorded = None  # the param of the last run, as Snakemake keeps it

    def param(self, cap_mb: float) -> str:
        return retry.marker(cap_mb, retry.read(self.out))

    def reruns(self, cap_mb: float) -> bool:
        return self.param(cap_mb) != self.recorded

    def run(self, cap_mb: float, peak_mb: int | None = None, error: str | None = None):
        """A run under ``cap_mb``: stopped by it at ``peak_mb``, failed with ``error``, or ok
        (its peak then matters to no one)."""
        self.recorded = self.param(cap_mb)
        reason = STOPPED.format(cap=cap_mb, peak=peak_mb) if peak_mb is not None else error
        before = retry.read(self.out)
        retry.record(self.out, cap_mb, before, reason, int((peak_mb or 1) * 1e6))
        # The command computes the marker it ran with as the workflow did: no plumbing.
        after = retry.read(self.out)
        assert after is None or after.ran_with == self.recorded


def test_a_job_the_cap_never_stopped_has_no_sidecar(tmp_path):
    job = TrackedJob(tmp_path / "m.parquet")
    job.run(4000)
    job.run(4000, error="ValueError: boom")
    assert not retry.sidecar(job.out).exists()
    assert not any(job.reruns(cap) for cap in (100, 4000, 10_000))


def test_a_job_the_cap_stopped_reruns_only_under_a_cap_above_its_peak(tmp_path):
    job = TrackedJob(tmp_path / "m.parquet")
    job.run(4000, peak_mb=4500)
    assert retry.read(job.out) == retry.CapHistory(4500, "")
    # The same cap, a cap raised short of the peak or up to it, a lowered cap: it stays.
    assert not any(job.reruns(cap) for cap in (4000, 4200, 4500, 300))
    assert job.reruns(4501) and job.reruns(6000)
    # Stopped again, higher: it stays until the cap is above the new peak.
    job.run(5000, peak_mb=5200)
    assert retry.read(job.out) == retry.CapHistory(5200, "cap above 4500 MB")
    assert not any(job.reruns(cap) for cap in (5000, 5200, 300, 4501))
    assert job.reruns(6000)
    # It succeeds: no cap reruns it again, lowered or raised.
    job.run(6000)
    assert retry.read(job.out) == retry.CapHistory(None, "cap above 5200 MB")
    assert not any(job.reruns(cap) for cap in (6000, 300, 10_000))
    # A later failure of another kind (a code edit reran it) keeps it as it was.
    job.run(300, error="ValueError: boom")
    assert not any(job.reruns(cap) for cap in (300, 6000, 10_000))


def test_a_job_stopped_below_its_cap_reruns_only_under_a_higher_cap(tmp_path):
    # The kernel's hard limit can kill a job before a poll sees it above the cap: the
    # peak seen is below the cap, but the job needs more than the cap.
    job = TrackedJob(tmp_path / "m.parquet")
    job.run(4000, peak_mb=3000)
    assert retry.read(job.out) == retry.CapHistory(4000, "")
    assert not any(job.reruns(cap) for cap in (4000, 3500))
    assert job.reruns(4001)


def test_a_sidecar_no_writer_made_counts_as_none(tmp_path):
    out = tmp_path / "m.parquet"
    for text in ("", "{", '{"ran_with": ""}', "[]", '{"failed_peak_mb": "high", "ran_with": ""}'):
        retry.sidecar(out).write_text(text)
        assert retry.read(out) is None and retry.marker(4000, retry.read(out)) == ""


def test_the_workflow_reads_each_jobs_marker_from_its_sidecar(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where Snakemake runs: the sidecars under results/
    pipeline = Pipeline(copy.deepcopy(TINY))
    assert pipeline.cap_retry() == ""  # no sidecar: a constant
    stopped, other = sorted(pipeline.runnable)[:2]
    peak = int(pipeline.max_job_mb) - 1
    retry.write(stopped, retry.CapHistory(peak, ""))
    lookup = Pipeline(copy.deepcopy(TINY)).cap_retry()
    assert lookup(wildcards(pipeline, stopped)) == f"cap above {peak} MB"
    assert lookup(wildcards(pipeline, other)) == ""


def wildcards(pipeline: Pipeline, path: str) -> types.SimpleNamespace:
    job = pipeline.runnable[path].job
    return types.SimpleNamespace(**{name: str(getattr(job, name)) for name in pipeline.key_names})


# The real Snakemake ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(swept_copy) -> Path:
    """The tiny sweep, run by the real Snakemake (once per session, see conftest)."""
    return swept_copy


def plan_in(workdir: Path, config: dict) -> list[sweep.PlannedJob]:
    """``config``'s plan as the workflow in ``workdir`` makes it at parse time (with what
    that folder holds: the predictions may follow its earlier measurements)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        return Pipeline(copy.deepcopy(config)).planned


def runnable(workdir: Path, config: dict) -> set[str]:
    return {p.path for p in plan_in(workdir, config) if p.status == sweep.RUN}


def predicted_mb(workdir: Path, config: dict, backend: str | None = None) -> list[float]:
    return [p.predicted_mb for p in plan_in(workdir, config) if backend in (None, p.job.backend)]


def between(workdir: Path, config: dict) -> float:
    """A budget that lean's jobs fit and pymdp-numpy's do not (its model and agents are
    bigger: the budget tests need this order, asserted here)."""
    lean = max(predicted_mb(workdir, config, "lean"))
    numpy = min(predicted_mb(workdir, config, "pymdp-numpy"))
    assert lean < numpy, "the budget tests need lean's jobs predicted below pymdp-numpy's"
    return (lean + numpy) / 2


def above_all(workdir: Path, config: dict) -> float:
    """The lowest whole-MB budget that every job fits."""
    return float(int(max(predicted_mb(workdir, config))) + 1)


def changed(config: dict = TINY, **changes) -> dict:
    """``config`` with ``section={key: value}`` changes."""
    config = copy.deepcopy(config)
    for section, values in changes.items():
        config[section].update(values)
    return config


def budget(max_job_mb: float, config: dict = TINY) -> dict:
    return changed(config, budget={"max_job_mb": max_job_mb})


def promote(config: dict, values: list) -> dict:
    """``config`` with its model setting ``obs_noise`` made an axis of ``values``."""
    config = copy.deepcopy(config)
    config["model"].pop("obs_noise")
    config["sweep"]["obs_noise"] = values
    return config


def planned_with(workdir: Path, config: dict) -> dict[str, set[str]]:
    """What a dry run under ``config`` would run; the tiny config is restored after it."""
    write_config(workdir, config)
    try:
        return planned(workdir)
    finally:
        write_config(workdir, TINY)


def edited(path: Path):
    """Append a comment to ``path``; the context restores its text and times."""

    class Edit:
        def __enter__(self):
            self.text, self.stat = path.read_text(), path.stat()
            path.write_text(self.text + "\n# edited by the rerun test\n")

        def __exit__(self, *exc):
            path.write_text(self.text)
            os.utime(path, ns=(self.stat.st_atime_ns, self.stat.st_mtime_ns))

    return Edit()


# Rules upstream of the measurements, which a change downstream must not rerun. (What
# reads the measurements, the aggregate and after it, reruns with them.)
UPSTREAM = {"plan", "reference", "calibrate"}


@workflow
def test_second_run_does_nothing(workdir):
    assert planned(workdir) == {}


@workflow
def test_new_axis_value_runs_only_new_jobs(workdir):
    grids = changed(sweep={"grid": [4, 5]})
    jobs = planned_with(workdir, grids)
    new = measure_outputs(jobs)
    assert new == runnable(workdir, grids) - runnable(workdir, TINY)
    assert len(new) == 3 and all("grid=5" in path for path in new)  # 2 lean + 1 pymdp-numpy
    assert jobs["reference"] == {"results/reference/grid=5/policy_len=1.npz"}
    assert {"plan", "aggregate", "report"} <= set(jobs) and "calibrate" not in jobs


@workflow
def test_changed_model_setting_reruns_the_jobs_that_use_it(workdir):
    jobs = planned_with(workdir, changed(model={"obs_noise": 0.2}))
    assert measure_outputs(jobs) == runnable(workdir, TINY)  # every job uses obs_noise
    assert jobs["reference"] == {"results/reference/grid=4/policy_len=1.npz"}
    assert "calibrate" not in jobs


@workflow
def test_setting_promoted_to_an_axis(workdir):
    # One value: the same measurements, but a new folder level (obs_noise=0.1/) in every
    # path, so every job runs again into it; the old files stay where they were.
    promoted = promote(TINY, [0.1])
    jobs = planned_with(workdir, promoted)
    old = runnable(workdir, TINY)
    moved = {path.replace("/policy_len", "/obs_noise=0.1/policy_len") for path in old}
    assert measure_outputs(jobs) == moved == runnable(workdir, promoted)
    assert jobs["reference"] == {"results/reference/grid=4/obs_noise=0.1/policy_len=1.npz"}
    # Once they ran, a second value runs only its own jobs (shown on one job of them,
    # which runs for real: lean, dense).
    one = changed(sweep={"backend": ["lean"], "storage": ["dense"]})
    write_config(workdir, promote(one, [0.1]))
    try:
        snakemake(workdir, "--until", "measure")
        two = promote(one, [0.1, 0.2])
        new = measure_outputs(planned_with(workdir, two))
        assert new == runnable(workdir, two) - runnable(workdir, promote(one, [0.1]))
        assert len(new) == 1 and "/obs_noise=0.2/" in next(iter(new))
        assert measure_outputs(planned(workdir)) == set()  # the tiny sweep's files: untouched
    finally:
        write_config(workdir, TINY)
        # The tree holds the tiny sweep's files only again (one layout: it reads as a whole).
        for folder in sorted((workdir / "results").rglob("obs_noise=*"), reverse=True):
            shutil.rmtree(folder, ignore_errors=True)


@workflow
def test_harness_edit_reruns_every_measurement(workdir):
    with edited(workdir / "src/memsweep/harness/recorder.py"):
        jobs = planned(workdir)
    assert measure_outputs(jobs) == runnable(workdir, TINY)
    assert "aggregate" in jobs and not UPSTREAM & set(jobs)


@workflow
def test_backend_edit_reruns_only_that_backend(workdir):
    with edited(workdir / "src/memsweep/agents/lean.py"):
        jobs = planned(workdir)
    rerun = measure_outputs(jobs)
    assert rerun == {path for path in runnable(workdir, TINY) if "backend=lean/" in path}
    assert len(rerun) == 2
    # The plan is rewritten too: a backend's declared capabilities live in its module.
    assert "plan" in jobs and not {"reference", "calibrate"} & set(jobs)


@workflow
def test_report_edit_reruns_only_the_report(workdir):
    with edited(workdir / "src/memsweep/report/build.py"):
        jobs = planned(workdir)
    assert set(jobs) == {"report"}


# Budgets ---------------------------------------------------------------------------------
@workflow
def test_raised_budget_reruns_no_measurement(workdir):
    jobs = planned_with(workdir, budget(TINY["budget"]["max_job_mb"] + 1000))
    assert measure_outputs(jobs) == set()
    # The plan records the budget: it and what reads it run again, nothing upstream.
    assert "plan" in jobs and not {"reference", "calibrate"} & set(jobs)


@workflow
def test_lowered_budget_keeps_completed_measurements(workdir):
    assert measure_outputs(planned_with(workdir, budget(above_all(workdir, TINY)))) == set()
    # pymdp-numpy's job becomes over-budget: not rerun, its file kept (the plan and so
    # the aggregate leave it out).
    lower = budget(between(workdir, TINY))
    assert runnable(workdir, lower) < runnable(workdir, TINY)
    assert measure_outputs(planned_with(workdir, lower)) == set()
    assert all((workdir / path).exists() for path in runnable(workdir, TINY))


@workflow
def test_raised_budget_runs_only_the_jobs_it_makes_runnable(workdir):
    # grid 5 is new; under the lower budget pymdp-numpy's jobs (grid 4, measured, and
    # grid 5, not) are over-budget, under the higher one they are runnable.
    grids = changed(sweep={"grid": [4, 5]})
    low, high = budget(between(workdir, grids), grids), budget(above_all(workdir, grids), grids)
    before = measure_outputs(planned_with(workdir, low))
    after = measure_outputs(planned_with(workdir, high))
    assert before == runnable(workdir, low) - runnable(workdir, TINY)  # grid 5's lean jobs
    made_runnable = runnable(workdir, high) - runnable(workdir, low)
    assert len(made_runnable) == 2 and all("backend=pymdp-numpy/" in p for p in made_runnable)
    # Of the jobs the budget made runnable, only the one never measured runs.
    assert after - before == made_runnable - runnable(workdir, TINY)
    assert len(after - before) == 1 and "grid=5" in next(iter(after - before))


@workflow
def test_job_the_cap_stopped_reruns_only_under_a_budget_above_its_peak(workdir):
    # A stand-in for a pymdp-numpy job that the cap of the tiny budget stopped at a peak
    # above it (the sidecar `memsweep measure` leaves; the next test makes a real one).
    cap = TINY["budget"]["max_job_mb"]
    [stopped] = [p for p in runnable(workdir, TINY) if "backend=pymdp-numpy/" in p]
    peak = cap + 500
    retry.write(workdir / stopped, retry.CapHistory(peak, ""))
    try:
        # The same budget (a raised one short of the peak or a lowered one: unit-tested).
        assert measure_outputs(planned(workdir)) == set()
        assert measure_outputs(planned_with(workdir, budget(peak + 1))) == {stopped}
    finally:
        retry.sidecar(workdir / stopped).unlink()
    assert planned(workdir) == {}


@workflow
def test_cap_failure_in_the_workflow_is_rerun_once_the_cap_is_above_its_peak(workdir):
    # A real cap failure: lean's csr job under a 1 MB cap (a Snakemake override of the
    # rule's mem_cap_mb resource; the budget itself cannot be below the plan's prediction).
    [target] = [p for p in runnable(workdir, TINY) if "backend=lean/storage=csr/" in p]
    override = ["--set-resources", "measure:mem_cap_mb=1"]
    snakemake(workdir, *override, "--forcerun", target, "--until", "measure")
    record = pd.read_parquet(workdir / target)
    assert set(record.status) == {"failed"}
    assert record.reason.str.startswith(retry.CAP_EXCEEDED).all()
    history = retry.read(workdir / target)
    assert history is not None and history.failed_peak_mb > 1 and history.ran_with == ""
    # The budget is above the peak it reached: that job alone runs again, and succeeds.
    assert measure_outputs(planned(workdir)) == {target}
    snakemake(workdir, "--until", "measure")
    assert "failed" not in set(pd.read_parquet(workdir / target).status)
    ran_with = f"cap above {history.failed_peak_mb} MB"
    assert retry.read(workdir / target) == retry.CapHistory(None, ran_with)
    # Measured: nothing reruns it, at this budget or a lower one.
    assert measure_outputs(planned(workdir)) == set()
    lower = budget(between(workdir, TINY))
    assert measure_outputs(planned_with(workdir, lower)) == set()
    # The sidecar stays beside the measurement; no reader takes it for one.
    tree = workdir / "results/measurements"
    assert list(tree.rglob(".*.cap.json")) == [retry.sidecar(workdir / target)]
    rows = sum(len(pd.read_parquet(workdir / path)) for path in runnable(workdir, TINY))
    for frame in (
        pd.read_parquet(tree),
        ds.dataset(tree, format="parquet", partitioning="hive").to_table().to_pandas(),
        read_measurements(tree).to_pandas(),
    ):
        assert len(frame) == rows
