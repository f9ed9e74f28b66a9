import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The tiny sweep that the workflow, resume, lint and SLURM tests share.
TEST_CONFIG = ROOT / ".test" / "config" / "config.yaml"
# In CI (CI=true, as GitHub Actions, GitLab CI and most others set it) a test whose
# dependency is missing fails instead of skipping: a broken install step is not green.
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require(condition: object, reason: str) -> None:
    """Skip the calling test, saying why, unless ``condition`` holds; in CI, fail instead.

    For what a test needs from the machine (root, Chromium, SLURM): ``make test``
    installs it, so in CI its absence is a broken set-up, not a reason to pass.
    """
    __tracebackhide__ = True  # report the calling test's line, not this one
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing test dependency fails the run)", pytrace=False)
    pytest.skip(reason)


def tiny_config(section: str | None = None, key: str | None = None, value=None) -> dict:
    """The shared tiny config (``.test/config/config.yaml``), with ``section.key`` set
    to ``value`` when given: a test that needs a variation changes one key."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    if section is not None:
        config[section][key] = value
    return config


def memsweep(*args, check=True, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed ``memsweep`` command as a user would."""
    command = shutil.which("memsweep", path=str(BIN)) or "memsweep"
    result = subprocess.run([command, *args], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"memsweep {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> Path:
    """A copy of the workflow in which the real Snakemake has run the tiny sweep, once per
    session. Tests that change it take their own copy (:func:`swept_copy`)."""
    from .test_workflow import TINY, copy_workflow, snakemake, write_config

    template = copy_workflow(tmp_path_factory.mktemp("tiny-sweep"))
    write_config(template, TINY)
    snakemake(template)
    return template


@pytest.fixture(scope="module")
def swept_copy(tiny_sweep, tmp_path_factory) -> Path:
    """This module's own copy of the swept workflow: outputs, Snakemake's records and
    modification times kept, so Snakemake finds nothing to do until the test changes it."""
    destination = tmp_path_factory.mktemp("swept") / "workflow"
    shutil.copytree(tiny_sweep, destination, symlinks=True, copy_function=shutil.copy2)
    return destination
