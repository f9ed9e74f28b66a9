"""One defaulting rule for a sweep file, whether `memsweep plan` or Snakemake reads it.

A sweep is one file: what it leaves out takes the schema's default, never the value of
another file (Snakemake would otherwise merge `config/config.yaml` into a `--configfile`
key by key). A partial file therefore plans the same jobs in both, or fails in both
with the same errors, each naming its key.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from memsweep.plan.jobs import Job

from .test_workflow import SNAKEMAKE, TINY, copy_workflow, write_config

pytestmark = pytest.mark.workflow

MEMSWEEP = str(Path(SNAKEMAKE).with_name("memsweep"))
# Every axis, no `model` and no `budget`: those take the schema's defaults.
AXES_ONLY = {"sweep": {**TINY["sweep"], "backend": ["lean"]}}
# Three axes left out.
MISSING_AXES = {"sweep": {k: v for k, v in TINY["sweep"].items() if k in ("backend", "grid")}}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("defaults"))
    # The checkout's own sweep differs from the partial file on purpose: two backends
    # and 4 steps. Nothing of it may reach a sweep that names its own file.
    write_config(workdir, TINY)
    return workdir


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PYTHONPATH": str(workdir / "src"),
        "PATH": str(Path(SNAKEMAKE).parent) + ":/usr/bin:/bin",
    }
    return subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def sweep_file(workdir: Path, name: str, config: dict) -> Path:
    path = workdir / "sweeps" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def to_run(plan_output: str) -> int:
    return int(re.search(r"(\d+) to run", plan_output).group(1))


def test_a_file_without_model_or_budget_plans_the_same_jobs_in_both(workdir):
    path = sweep_file(workdir, "axes-only", AXES_ONLY)
    plan = run(workdir, MEMSWEEP, "plan", str(path))
    assert plan.returncode == 0, plan.stderr
    dry = run(workdir, SNAKEMAKE, "--cores", "1", "--dry-run", "--printshellcmds",
              "--configfile", str(path))  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-3000:]
    commands = [line for line in dry.stdout.splitlines() if "memsweep.cli measure" in line]
    assert len(commands) == to_run(plan.stdout) == 2  # lean: dense and csr
    # The model settings are the schema's defaults (steps 20), not config/config.yaml's (4).
    defaults = Job.__dataclass_fields__
    for command in commands:
        assert "backend=lean" in command
        assert f"--set steps={defaults['steps'].default} " in command
        assert f"--set repeats={defaults['repeats'].default} " in command


def test_a_file_missing_axes_fails_the_same_in_both_naming_each_key(workdir):
    path = sweep_file(workdir, "missing-axes", MISSING_AXES)
    plan = run(workdir, MEMSWEEP, "plan", str(path))
    dry = run(workdir, SNAKEMAKE, "--cores", "1", "--dry-run", "--configfile", str(path))
    assert plan.returncode == 2 and dry.returncode != 0
    missing = sorted(set(TINY["sweep"]) - set(MISSING_AXES["sweep"]))
    expected = [f"sweep: '{axis}' is a required property" for axis in missing]
    for line in expected:
        assert line in plan.stderr, plan.stderr
        assert line in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]
    assert not (workdir / "results").exists()


def test_without_a_configfile_the_checkouts_sweep_runs(workdir):
    dry = run(workdir, SNAKEMAKE, "--cores", "1", "--dry-run", "--printshellcmds")
    assert dry.returncode == 0, dry.stderr[-3000:]
    commands = [line for line in dry.stdout.splitlines() if "memsweep.cli measure" in line]
    assert len(commands) == 3  # TINY: pymdp-numpy dense, lean dense and csr
    assert all("--set steps=4 " in command for command in commands)
