"""A sweep killed with SIGKILL mid-run, started again, finishes only what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from memsweep.results.schema import measurement_files, read_file

from .conftest import tiny_config
from .test_workflow import SNAKEMAKE, copy_workflow, planned, snakemake, write_config

pytestmark = pytest.mark.workflow

# The shared tiny sweep on two grids: six measurements, run one at a time so the kill
# lands between and inside jobs.
CONFIG = tiny_config("sweep", "grid", [4, 5])


def test_killed_sweep_resumes_with_only_the_missing_jobs(tmp_path):
    workdir = copy_workflow(tmp_path)
    write_config(workdir, CONFIG)
    everything = planned(workdir)["measure"]
    assert len(everything) == 6

    env = {**os.environ, "PYTHONPATH": str(workdir / "src")}
    # A session of its own, so SIGKILL reaches snakemake and every job it started.
    sweep = subprocess.Popen(
        [SNAKEMAKE, "--cores", "1"],
        cwd=workdir,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tree = workdir / "results/measurements"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(measurement_files(tree) if tree.exists() else []) < 2:
        time.sleep(0.2)
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait()

    done = {str(p.relative_to(workdir)) for p in measurement_files(tree)}
    assert 2 <= len(done) < 6, f"kill landed too late or too early: {sorted(done)}"
    for path in done:  # nothing under a final name is partial
        read_file(workdir / path)
    print(f"\nplanned {len(everything)}, done before the kill {len(done)}")

    snakemake(workdir, "--unlock")
    rerun = planned(workdir)["measure"]
    print(f"rerun after the kill {len(rerun)}: {sorted(rerun)}")
    missing = everything - done
    assert missing <= rerun
    # With one core at most one job was in flight: if its file landed before Snakemake
    # recorded the job as finished, Snakemake calls it incomplete and reruns it too.
    assert len(rerun - missing) <= 1

    snakemake(workdir)
    assert planned(workdir) == {}
    measurements = pd.read_parquet(workdir / "results/measurements.parquet")
    assert measurements.config_id.nunique() == 6
    assert not list(Path(workdir / "results").rglob(".*.tmp*")), "temporary files left behind"
