"""The fitted predictor in the real Snakemake: the sweep writes it, the next plan uses it,
and a new predictor reruns no measurement (the tiny sweep, in a temporary copy)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memsweep.plan import fitted, predict
from memsweep.workflow import Pipeline

from .test_workflow import TINY, measure_outputs, planned

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def workdir(swept_copy) -> Path:
    """The tiny sweep, run by the real Snakemake (once per session, see conftest)."""
    return swept_copy


def test_the_sweep_writes_its_predictor(workdir):
    path = workdir / predict.PREDICTOR
    data = json.loads(path.read_text())
    assert data["probe"] == "vmhwm" and data["whole_process"]  # this harness's files
    assert set(data["backends"]) == {"lean", "pymdp-numpy"}
    assert data["code_digests"] == copy_digests(workdir, ("lean", "pymdp-numpy"))
    # One grid: lean's two jobs fit every consumer (constants where x does not vary), but
    # no grid is left to test on; pymdp-numpy's one job fits nothing.
    lean, numpy = data["backends"]["lean"], data["backends"]["pymdp-numpy"]
    assert set(lean["fits"]) == set(fitted.CONSUMERS) and lean["grids"] == [4]
    assert numpy["fits"] == {} and numpy["jobs"] == 1
    assert all(row["predicted"] == 0 for row in data["leave_one_grid_out"])
    # The next plan of this sweep predicts lean's jobs by it, pymdp-numpy's by the formula.
    pipeline = Pipeline(copy.deepcopy(TINY), predictor=path)
    by = {p.job.backend: p.predicted_by for p in pipeline.runnable.values()}
    assert by == {"lean": predict.FITTED, "pymdp-numpy": predict.ANALYTIC}


def test_its_predictor_does_not_redo_the_sweep(workdir):
    assert planned(workdir) == {}


def copy_digests(workdir: Path, backends) -> dict[str, str]:
    """The measure rule's code digest of each backend, as the copy's own code makes it."""
    code = (
        "import json, sys; from memsweep.workflow import measure_digest; "
        "print(json.dumps({b: measure_digest(b) for b in sys.argv[1:]}))"
    )
    env = {**os.environ, "PYTHONPATH": str(workdir / "src")}
    result = subprocess.run(
        [sys.executable, "-c", code, *backends], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def rewritten(path: Path, change):
    """``path``'s predictor with ``change(data)`` applied; the context restores it."""

    class Rewrite:
        def __enter__(self):
            self.text, self.stat = path.read_text(), path.stat()
            data = json.loads(self.text)
            change(data)
            path.write_text(json.dumps(data))

        def __exit__(self, *exc):
            path.write_text(self.text)
            os.utime(path, ns=(self.stat.st_atime_ns, self.stat.st_mtime_ns))

    return Rewrite()


def scale_fixed(factor: float, backend: str | None = None):
    def change(data):
        for name, entry in data["backends"].items():
            if backend in (None, name) and entry["fits"]:
                entry["fits"]["fixed"]["a"] *= factor

    return change


def test_a_new_predictor_reruns_no_measurement(workdir):
    path = workdir / predict.PREDICTOR
    # lean's fixed cost 3×: its requests change (resources), nothing reruns.
    before = Pipeline(copy.deepcopy(TINY), predictor=path).runnable
    with rewritten(path, scale_fixed(3.0)):
        after = Pipeline(copy.deepcopy(TINY), predictor=path).runnable
        for key, job in before.items():
            grew = after[key].predicted_mb > job.predicted_mb
            assert grew == (job.job.backend == "lean"), key
        assert planned(workdir) == {}
    # lean's jobs over the budget: the plan is redone (and what reads it), no measurement.
    with rewritten(path, scale_fixed(1000.0, "lean")):
        jobs = planned(workdir)
    assert measure_outputs(jobs) == set()
    assert {"plan", "aggregate"} <= set(jobs) <= {"plan", "aggregate", "predictor", "report"}
    assert planned(workdir) == {}
