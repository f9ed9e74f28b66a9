"""A config's `compare:` key: checked, then a compare rule beside the report that the
report links; without the key, no rule."""

from __future__ import annotations

import copy
import re

import pytest

from memsweep.plan import config
from memsweep.workflow import Pipeline

from .test_defaults import run, sweep_file
from .test_workflow import SNAKEMAKE, TINY, copy_workflow, write_config


@pytest.mark.parametrize(
    ("compare", "error"),
    [
        ({}, "compare: give baseline (a saved baseline's name) or axis (AXIS=BASE,NEW), one "
             "of them; got neither"),
        ({"baseline": "a", "axis": "dtype=float64,float32"}, "got ['baseline', 'axis']"),
        ({"axis": "dtype=float64"}, "compare.axis: 'dtype=float64' does not match"),
        ({"baseline": "../up"}, "compare.baseline: '../up' does not match"),
        ({"baseline": "a", "threshold": -1}, "compare.threshold: -1 is less than the minimum"),
    ],
)  # fmt: skip
def test_a_comparison_names_a_baseline_or_an_axis(compare, error):
    with pytest.raises(config.ConfigError, match=re.escape(error)):
        config.check({**copy.deepcopy(TINY), "compare": compare})


def test_the_command_compares_this_sweep_with_the_baseline_or_within_it():
    with_baseline = Pipeline({**copy.deepcopy(TINY), "compare": {"baseline": "before"}})
    command = with_baseline.compare_command()
    assert "-m memsweep.cli compare before {input.measurements} --threshold 5 " in command
    assert command.endswith("--results results --out results/report > {log} 2>&1")
    assert with_baseline.compare_outputs()[0] == "results/report/compare.html"
    within = Pipeline({**copy.deepcopy(TINY), "compare": {"axis": "dtype=float64,float32",
                                                          "threshold": 10}})  # fmt: skip
    assert "compare {input.measurements} --axis dtype=float64,float32 --threshold 10 " in (
        within.compare_command()
    )
    without = Pipeline(copy.deepcopy(TINY))
    assert without.compare_command() is None and without.compare_outputs() == []


@pytest.mark.workflow
def test_the_workflow_runs_the_comparison_before_the_report(tmp_path):
    workdir = copy_workflow(tmp_path)
    write_config(workdir, TINY)
    asked = sweep_file(workdir, "compare", {**TINY, "compare": {"axis": "storage=dense,csr"}})
    dry = run(workdir, SNAKEMAKE, "--cores", "1", "--dry-run", "--configfile", str(asked))
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = dry.stdout.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    assert "compare " in jobs and "report " in jobs
    plain = run(workdir, SNAKEMAKE, "--cores", "1", "--dry-run")
    assert plain.returncode == 0 and "compare " not in plain.stdout.split("Job stats:", 1)[1]
