"""Supervised jobs: every way a child can fail still yields a failed record, and nothing is left.

A memory cap (through the real CLI), an exception in the child, a child killed by a
signal from outside, and a stop signal (SIGTERM, SIGINT) sent to the supervising
``memsweep measure`` process itself.
"""

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from memsweep.harness import retry, supervisor
from memsweep.harness.reference import Reference
from memsweep.plan.jobs import Job
from memsweep.results import schema
from memsweep.world.base import WorldSettings

from .conftest import BIN, memsweep

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
    """Hidden files left beside the output: temporaries, but not the cap history that a
    job the cap stopped keeps on purpose (memsweep.harness.retry)."""
    return sorted(
        p.name for p in folder.iterdir() if p.name.startswith(".") and p.suffix != ".json"
    )


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
        check=False,  # it wrote a failed record: the CLI's exit status says so, its own way
    )
    assert "FAILED: exceeded memory cap" in result.stdout, result.stdout + result.stderr
    return failure_row(out)


def test_a_child_over_the_cap_yields_a_failed_record(tmp_path, reference_40):
    out = tmp_path / "x.parquet"
    row = run_capped(out, reference_40, 200)
    # 200 MB is less than PyMDP's own import (pandas, matplotlib, seaborn) costs.
    assert row.reason.startswith("exceeded memory cap of 200 MB at phase ")
    assert row.value > 200e6  # the child's resident memory when it was stopped
    assert row.grid == 40 and row.agents == 10 and row.sharing == "private"
    # The cap's history, so that a higher budget reruns this job (and only this one).
    assert retry.read(out).failed_peak_mb >= 200
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


def test_a_child_that_raises_yields_its_exception(tmp_path, capfd):
    # A reference made for another (5×5) world: the child refuses it with a ValueError.
    # (The CLI refuses it before it starts anything; the supervisor is called directly.)
    wrong = tmp_path / "grid5.npz"
    steps = 20
    Reference(
        observations=np.zeros((steps, 1), int),
        actions=np.zeros((steps, 1), int),
        qs=np.full((steps, 25), 1 / 25),
        q_pi=np.full((steps, 5), 1 / 5),
        world=WorldSettings(grid=5),
        policy_len=1,
    ).save(wrong)
    out = tmp_path / "x.parquet"
    (tmp_path / ".x.parquet.tmp99999").write_bytes(b"left by an earlier, killed writer")
    job = Job("pymdp-numpy", "dense", "float64", 8, 1, "shared", 1)
    outcome = supervisor.measure_job(job, out, wrong)
    assert not outcome.ok
    assert "memsweep supervisor: FAILED: ValueError" in capfd.readouterr().err
    row = failure_row(out)
    assert row.reason == outcome.reason
    assert row.reason.startswith("ValueError: reference is for WorldSettings(world='grid', grid=5,")
    assert "not WorldSettings(world='grid', grid=8," in row.reason
    assert row.grid == 8 and row.config_id == job.config_id
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
    trace = Reference.load(out)
    assert trace.world == job.world_settings() and trace.policy_len == 1 and trace.steps == 2
    assert trace.actions.shape == (2, 1) and trace.observations.shape == (2, 1)  # one factor
    assert set(trace.actions.ravel()) <= set(range(5))
    assert set(trace.observations.ravel()) <= set(range(9))
    assert np.allclose(trace.qs.sum(axis=1), 1) and np.allclose(trace.q_pi.sum(axis=1), 1)
    assert partials(tmp_path) == []


# --- a stop signal to the supervising process ------------------------------------------


def start_measure(tmp_path, out, *extra) -> tuple[subprocess.Popen, Path]:
    """``memsweep measure`` (grid 40, ten private agents: seconds of work) in the
    background, its temporary folders in a folder of the test's own."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    command = shutil.which("memsweep", path=str(BIN)) or "memsweep"
    cli = subprocess.Popen(
        [command, "measure", *AXES, *BIG, "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    return cli, temp


def wait_for_worker(cli: subprocess.Popen, task: str) -> list[psutil.Process]:
    """The CLI's worker process running ``task``, once it has started; and its tree."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and cli.poll() is None:
        for child in psutil.Process(cli.pid).children(recursive=True):
            try:
                cmdline = child.cmdline()
            except psutil.Error:
                continue
            if "memsweep.harness.worker" in cmdline and task in cmdline:
                time.sleep(1.0)  # let it get going (imports, then work)
                return [child, *child.children(recursive=True)]
        time.sleep(0.02)
    raise AssertionError(f"no {task} worker was seen: {cli.communicate()}")


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def workers_under(folder: Path) -> list[psutil.Process]:
    """Live workers whose command line names a path in ``folder`` (their scratch files)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "memsweep.harness.worker" in cmdline and str(folder) in " ".join(cmdline):
            found.append(process)
    return [p for p in found if not gone(p)]


def interrupted_record_or_nothing(out, name: str) -> None:
    if out.exists():
        row = failure_row(out)
        assert row.reason == f"interrupted by {name}"


def test_sigterm_to_memsweep_measure_stops_the_worker_and_cleans_up(tmp_path, reference_40):
    out = tmp_path / "x.parquet"
    cli, temp = start_measure(tmp_path, out, "--reference", str(reference_40))
    tree = wait_for_worker(cli, "measure")
    assert any(p.name.startswith("memsweep-") for p in temp.iterdir())  # in use now
    cli.send_signal(signal.SIGTERM)
    _, stderr = cli.communicate(timeout=120)
    assert all(gone(process) for process in tree), tree
    assert workers_under(temp) == [] and workers_writing(out) == []
    assert sorted(p.name for p in temp.iterdir()) == []
    assert partials(tmp_path) == []
    interrupted_record_or_nothing(out, "SIGTERM")
    assert "Traceback" not in stderr, stderr  # a request to stop, not a crash


def test_sigint_during_the_reference_stops_it_and_cleans_up(tmp_path):
    out = tmp_path / "x.parquet"
    cli, temp = start_measure(tmp_path, out)  # no --reference: one is computed first
    tree = wait_for_worker(cli, "reference")
    assert any(p.name.startswith("memsweep-ref-") for p in temp.iterdir())  # in use now
    cli.send_signal(signal.SIGINT)
    cli.communicate(timeout=120)
    assert all(gone(process) for process in tree), tree
    assert workers_under(temp) == []
    assert sorted(p.name for p in temp.iterdir()) == []
    interrupted_record_or_nothing(out, "SIGINT")
