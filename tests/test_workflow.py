"""The real Snakemake on a tiny config, in a temporary copy of the workflow: what a first
run makes. What a later run reruns is tests/test_reruns.py's, with these helpers.

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
def workdir(swept_copy) -> Path:
    """The tiny sweep, run by the real Snakemake (once per session, see conftest)."""
    return swept_copy


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
