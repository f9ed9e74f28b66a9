"""The real Snakemake on a tiny config, in a temporary copy of the workflow.

The copy carries its own ``src/`` (first on PYTHONPATH), so editing a backend's
module there is an edit to the code the jobs run, and nothing in the checkout
is touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest
import yaml

from .conftest import ROOT, tiny_config

pytestmark = pytest.mark.workflow

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# The shared tiny sweep (.test/config/config.yaml): pymdp-numpy and lean, dense and csr,
# grid 4: three measurements (pymdp-numpy cannot hold CSR).
TINY = tiny_config()


def copy_workflow(destination: Path) -> Path:
    for name in (
        "Snakefile",
        "workflow",
        "profiles",
        "config",
        "src",
        "environment.yml",
        "pyproject.toml",
    ):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source,
                destination / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )
        else:
            shutil.copy2(source, destination / name)
    return destination


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(workdir / "src")}
    result = subprocess.run(
        [SNAKEMAKE, "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


def planned(workdir: Path) -> dict[str, set[str]]:
    """rule -> outputs that a dry run would make now (the target rule `all` has none)."""
    text = snakemake(workdir, "--dry-run").stdout
    jobs: dict[str, set[str]] = {}
    rule = None
    for line in text.splitlines():
        match = re.match(r"\s*(?:local)?rule (\w+):", line)
        if match:
            rule = match.group(1)
        match = re.match(r"\s*output: (.+)", line)
        if match and rule:
            jobs.setdefault(rule, set()).update(part.strip() for part in match.group(1).split(","))
    return jobs


def measure_outputs(jobs: dict[str, set[str]]) -> set[str]:
    return jobs.get("measure", set())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    write_config(workdir, TINY)
    snakemake(workdir)
    return workdir


def test_first_run_produces_every_output(workdir):
    assert (workdir / "results/report/hotspots.md").exists()
    plan = pd.read_parquet(workdir / "results/sweep/plan.parquet")
    # pymdp-numpy cannot hold CSR: planned as unsupported, with its reason.
    unsupported = plan[plan.status == "unsupported"]
    assert list(unsupported.backend) == ["pymdp-numpy"] and list(unsupported.storage) == ["csr"]
    assert unsupported.reason.str.contains("dense").all()
    for table in ("per_agent_bytes", "peak_bytes", "model_bytes", "step_seconds", "failures"):
        assert (workdir / f"results/tables/{table}.csv").exists()
        assert (workdir / f"results/tables/{table}.md").exists()
    measurements = pd.read_parquet(workdir / "results/measurements.parquet")
    assert set(measurements.config_id) == set(plan[plan.status == "run"].config_id)


def test_hive_tree_reads_without_project_code(workdir):
    tree = workdir / "results/measurements"
    with_pandas = pd.read_parquet(tree)
    with_arrow = ds.dataset(tree, format="parquet", partitioning="hive").to_table().to_pandas()
    for frame in (with_pandas, with_arrow):
        assert {"backend", "storage", "dtype", "grid", "agents", "sharing", "policy_len"} <= set(
            frame.columns
        )
        assert set(frame.backend.astype(str)) == {"pymdp-numpy", "lean"}
    assert len(with_pandas) == len(pd.read_parquet(workdir / "results/measurements.parquet"))


def test_log_file_per_job(workdir):
    logs = sorted((workdir / "results/logs/measurements").rglob("*.log"))
    measurements = sorted((workdir / "results/measurements").rglob("*.parquet"))
    assert len(logs) == len(measurements) == 3
    # Beside its measurement's path, under results/logs/ (the rule's log: directive).
    assert [log.relative_to(workdir / "results/logs") for log in logs] == [
        m.relative_to(workdir / "results").with_name(m.name + ".log") for m in measurements
    ]


def test_second_run_does_nothing(workdir):
    assert planned(workdir) == {}


def test_new_axis_value_runs_only_new_jobs(workdir):
    write_config(workdir, tiny_config("sweep", "grid", [4, 5]))
    try:
        jobs = planned(workdir)
    finally:
        write_config(workdir, TINY)
    new = measure_outputs(jobs)
    assert len(new) == 3 and all("grid=5" in path for path in new)  # 2 lean + 1 pymdp-numpy
    assert jobs["reference"] == {"results/reference/grid=5/policy_len=1.npz"}
    assert set(jobs) == {"plan", "reference", "measure", "aggregate", "report"}


def test_changed_model_setting_reruns_the_jobs_that_use_it(workdir):
    write_config(workdir, tiny_config("model", "obs_noise", 0.2))
    try:
        jobs = planned(workdir)
    finally:
        write_config(workdir, TINY)
    assert len(measure_outputs(jobs)) == 3  # every job uses obs_noise
    assert jobs["reference"] == {"results/reference/grid=4/policy_len=1.npz"}
    assert "calibrate" not in jobs


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


def test_backend_edit_reruns_only_that_backend(workdir):
    with edited(workdir / "src/memsweep/agents/lean.py"):
        jobs = planned(workdir)
    rerun = measure_outputs(jobs)
    assert len(rerun) == 2 and all("backend=lean" in path for path in rerun)
    # The plan is rewritten too: a backend's declared capabilities live in its module.
    assert set(jobs) == {"plan", "measure", "aggregate", "report"}


def test_report_edit_reruns_only_the_report(workdir):
    with edited(workdir / "src/memsweep/report/build.py"):
        jobs = planned(workdir)
    assert set(jobs) == {"report"}
