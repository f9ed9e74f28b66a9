"""The project's style checks: ruff for Python, snakefmt and snakemake --lint for the workflow."""

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["snakefmt", "--check", "."],
        # The shared tiny config: the lint parses the workflow in seconds.
        ["snakemake", "--lint", "--configfile", ".test/config/config.yaml"],
    ],
    ids=["ruff-check", "ruff-format", "snakefmt", "snakemake-lint"],
)
def test_clean(command):
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    if command[0] == "snakemake":
        assert "Congratulations" in output, output[-4000:]
