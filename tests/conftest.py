import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


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
