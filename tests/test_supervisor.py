"""Supervised jobs: every way a child can fail still yields a failed record, and nothing is left.

A memory cap (through the real CLI), an exception in the child, and a child killed by a
signal from outside.
"""

import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest

from memsweep.harness import supervisor
from memsweep.harness.reference import Reference
from memsweep.plan.jobs import Job
from memsweep.results import schema
from memsweep.world.gridworld import GridWorld

from .conftest import memsweep

BIG = ["--grid", "40", "--agents", "10", "--sharing", "private", "--policy-len", "1"]
AXES = ["--backend", "pymdp-numpy", "--storage", "dense", "--dtype", "float64"]


@pytest.fixture(scope="module")
def reference_40(tmp_path_factory):
    """The real reference trace of the 40×40 world (policy_len 1, 20 steps)."""
    path = tmp_path_factory.mktemp("reference") / "grid40.npz"
    job = Job("pymdp-numpy", "dense", "float64", 40, 1, "shared", 1)
    assert supervisor.make_reference_file(job, path).ok
    return path


def partials(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def workers_writing(out) -> list[psutil.Process]:
    """Live processes whose command line names ``out``: a job's child that outlived it."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if str(out) in cmdline and process.pid != os.getpid():
            found.append(process)
    return found


def failure_row(out):
    frame = schema.read_measurements(out).to_pandas()
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row.status == "failed"
    assert row.phase == "failure"
    assert row.probe == supervisor.PROBE and row.unit == "B"
    return row


def run_capped(out, reference, cap_mb: int):
    result = memsweep(
        "measure",
        *AXES,
        *BIG,
        "--mem-cap-mb",
        str(cap_mb),
        "--reference",
        str(reference),
        "--out",
        str(out),
    )
    assert result.returncode == 0
    assert "FAILED: exceeded memory cap" in result.stdout
    return failure_row(out)


def test_a_child_over_the_cap_yields_a_failed_record(tmp_path, reference_40):
    out = tmp_path / "x.parquet"
    row = run_capped(out, reference_40, 200)
    # 200 MB is less than PyMDP's own import (pandas, matplotlib, seaborn) costs.
    assert row.reason.startswith("exceeded memory cap of 200 MB at phase ")
    assert row.value > 200e6  # the child's resident memory when it was stopped
    assert row.grid == 40 and row.agents == 10 and row.sharing == "private"
    assert partials(tmp_path) == []
    assert workers_writing(out) == []


def test_the_cap_stops_the_child_in_the_phase_that_allocates(tmp_path, reference_40):
    # Import (~0.25 GB) and the model (~0.15 GB) fit; ten private copies (1.2 GB) do not.
    out = tmp_path / "x.parquet"
    row = run_capped(out, reference_40, 600)
    assert row.reason.startswith("exceeded memory cap of 600 MB at phase build ")
    assert row.operation == "build"
    assert row.value > 600e6
    assert partials(tmp_path) == []
    assert workers_writing(out) == []


def test_a_child_that_raises_yields_its_exception(tmp_path):
    # A reference made for another (5×5) world: the child refuses it with a ValueError.
    wrong = tmp_path / "grid5.npz"
    steps = 20
    Reference(
        observations=np.zeros(steps, int),
        actions=np.zeros(steps, int),
        qs=np.full((steps, 25), 1 / 25),
        q_pi=np.full((steps, 5), 1 / 5),
        world=GridWorld(grid=5),
        policy_len=1,
    ).save(wrong)
    out = tmp_path / "x.parquet"
    (tmp_path / ".x.parquet.tmp99999").write_bytes(b"left by an earlier, killed writer")
    result = memsweep(
        "measure",
        *AXES,
        "--grid",
        "8",
        "--agents",
        "1",
        "--sharing",
        "shared",
        "--policy-len",
        "1",
        "--reference",
        str(wrong),
        "--out",
        str(out),
    )
    assert "FAILED: ValueError" in result.stdout
    row = failure_row(out)
    assert row.reason.startswith("ValueError: reference is for GridWorld(grid=5")
    assert "GridWorld(grid=8" in row.reason
    assert row.grid == 8
    assert partials(tmp_path) == []
    assert workers_writing(out) == []


def test_a_child_killed_by_a_signal_yields_the_signal(tmp_path, reference_40):
    job = Job("pymdp-numpy", "dense", "float64", 40, 1, "shared", 1)
    out = tmp_path / "x.parquet"
    killed = []

    def kill_the_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for child in psutil.Process().children(recursive=True):
                try:
                    cmdline = child.cmdline()
                except psutil.Error:
                    continue
                if "memsweep.harness.worker" in cmdline and str(out) in cmdline:
                    time.sleep(0.5)  # let it get going
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append(child.pid)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_worker)
    killer.start()
    outcome = supervisor.measure_job(job, out, reference_40)
    killer.join()
    assert killed, "the worker was never seen"
    assert not outcome.ok
    assert outcome.reason == "killed by SIGKILL"
    row = failure_row(out)
    assert row.reason == "killed by SIGKILL"
    assert row.config_id == job.config_id
    assert partials(tmp_path) == []
    assert psutil.Process().children(recursive=True) == []


def test_run_child_reports_an_ok_outcome_with_its_peak(tmp_path):
    job = Job("pymdp-numpy", "dense", "float64", 3, 1, "shared", 1, steps=2)
    out = tmp_path / "ref.npz"
    outcome = supervisor.make_reference_file(job, out)
    assert outcome.ok and outcome.reason is None
    assert outcome.phase == "reference"
    assert outcome.peak_rss_bytes > 10e6  # a Python process with numpy and PyMDP loaded
    assert Reference.load(out).world == job.world()
    assert partials(tmp_path) == []
