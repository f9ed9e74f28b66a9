"""An environment of its own for each PyMDP release that memsweep does not pin.

A job on the pinned release (``pymdp_version`` = :data:`PYMDP_PINNED`) runs its worker with
memsweep's own interpreter. A job on another release runs it with the interpreter of
``<root>/pymdp-<version>``: a virtual environment holding that release of
``inferactively-pymdp``, what the harness imports (:data:`HARNESS_NEEDS`), and memsweep's
own package copied in, refreshed whenever the running package's code differs, so the
measured process runs the same harness as its supervisor. Everything is installed at
memsweep's pins (a constraints file made from its requirements): a release that needs JAX
gets the pinned JAX, one that does not gets none.

The root is ``$MEMSWEEP_ENVS``, else ``~/.cache/memsweep/envs``: environments outlive a
checkout's ``results/``. The workflow's ``pymdp_env`` rule builds each once, before the
release's measure jobs (``python -m memsweep.harness.envs VERSION --marker PATH``); a job
run by hand builds it on first use. A lock keeps two builders of one environment apart.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

from memsweep.agents.base import PYMDP_DISTRIBUTION, PYMDP_PINNED, PYMDP_RELEASES
from memsweep.files import atomic

ROOT_VARIABLE = "MEMSWEEP_ENVS"
# What the worker imports besides the backend's own libraries (the harness, the table's
# writer, the config's loader): installed at memsweep's pins beside the release.
HARNESS_NEEDS = ("numpy", "scipy", "pyarrow", "psutil", "pyyaml", "jsonschema")
MARKER = "memsweep-env.json"  # written last: an environment without it is rebuilt
CODE_STAMP = "memsweep-code.txt"  # the digest of the memsweep package copied in
PACKAGE = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^;\s]+)$")


def root() -> Path:
    return Path(os.environ.get(ROOT_VARIABLE) or Path.home() / ".cache" / "memsweep" / "envs")


def folder(version: str) -> Path:
    return root() / f"pymdp-{version}"


def interpreter(version: str) -> Path:
    """The Python that runs jobs on PyMDP ``version`` (built or not)."""
    if version == PYMDP_PINNED:
        return Path(sys.executable)
    return folder(version) / "bin" / "python"


def pins() -> dict[str, str]:
    """memsweep's pinned requirements (pyproject.toml's ``dependencies``), name -> version."""
    try:
        declared = requires("memsweep") or []
    except PackageNotFoundError as error:
        raise RuntimeError("memsweep is not installed: its metadata holds its pins") from error
    found = {}
    for requirement in declared:
        match = _PIN.match(requirement.strip())
        if match:  # extras (`; extra == "dev"`) and unpinned ones are no pins
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def requirements(version: str) -> list[str]:
    """What an environment for PyMDP ``version`` installs (constraints aside)."""
    pinned = pins()
    return [f"{PYMDP_DISTRIBUTION}=={version}", *(f"{n}=={pinned[n]}" for n in HARNESS_NEEDS)]


def constraints() -> list[str]:
    """memsweep's pins but PyMDP's: what a release pulls in is installed at them."""
    return [f"{n}=={v}" for n, v in sorted(pins().items()) if n != PYMDP_DISTRIBUTION]


def code_digest() -> str:
    """The digest of the memsweep package that runs now (its ``.py`` and ``.yaml`` files)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".yaml") and path.is_file():
            digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def read_marker(version: str) -> dict | None:
    try:
        return json.loads((folder(version) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _current(version: str, marker: dict | None) -> bool:
    return (
        marker is not None
        and marker.get("requirements") == requirements(version)
        and marker.get("constraints") == constraints()
        and interpreter(version).exists()
    )


@contextlib.contextmanager
def _locked(version: str):
    """One builder of ``version``'s environment at a time (measure jobs run side by side)."""
    lock = root() / f".pymdp-{version}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], log) -> str:
    """Run ``command``, its output to ``log``; its stdout; a failure names the command."""
    result = subprocess.run(command, capture_output=True, text=True)
    log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
    log.flush()
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command[:4])} … failed ({result.returncode}):\n{tail}")
    return result.stdout


def _build(version: str, log) -> dict:
    """A new environment for PyMDP ``version``, from nothing (an old one is removed)."""
    target = folder(version)
    started = time.monotonic()
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(target)], log)
    python = str(interpreter(version))
    wanted, pinned = requirements(version), constraints()
    with tempfile.TemporaryDirectory(prefix="memsweep-env-") as scratch:
        listed = Path(scratch) / "constraints.txt"
        listed.write_text("\n".join(pinned) + "\n")
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        _run([*pip, "-c", str(listed), *wanted], log)
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], log)
    installed = _run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({PYMDP_DISTRIBUTION!r}))"],
        log,
    ).strip()
    if installed != version:
        raise RuntimeError(f"{target}: PyMDP {installed} installed where {version} was asked for")
    marker = {
        "pymdp_version": version,
        "python": python,
        "purelib": purelib.strip(),
        "requirements": wanted,
        "constraints": pinned,
        "build_seconds": round(time.monotonic() - started, 1),
    }
    with atomic(target / MARKER) as temporary:
        temporary.write_text(json.dumps(marker, indent=1) + "\n")
    return marker


def _install_code(marker: dict, log) -> None:
    """memsweep's running package, copied into the environment unless it is there already."""
    digest = code_digest()
    stamp = Path(marker["purelib"]) / CODE_STAMP
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    destination = Path(marker["purelib"]) / "memsweep"
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(PACKAGE, destination, ignore=shutil.ignore_patterns("__pycache__"))
    with atomic(stamp) as temporary:
        temporary.write_text(digest + "\n")
    log.write(f"memsweep {digest} copied to {destination}\n")


def ensure(version: str, log=None) -> Path:
    """The interpreter for jobs on PyMDP ``version``: memsweep's own for the pinned
    release; else its environment's, built first where it is missing or out of date, with
    memsweep's current code."""
    if version not in PYMDP_RELEASES:
        raise ValueError(f"unknown PyMDP release {version!r}; known: {', '.join(PYMDP_RELEASES)}")
    if version == PYMDP_PINNED:
        return interpreter(version)
    log = log or sys.stderr
    with _locked(version):
        marker = read_marker(version)
        if not _current(version, marker):
            log.write(f"memsweep: building PyMDP {version}'s environment in {folder(version)}\n")
            marker = _build(version, log)
        _install_code(marker, log)
    return interpreter(version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memsweep.harness.envs",
        description="build the environment that jobs on one PyMDP release run in",
    )
    parser.add_argument("version", choices=PYMDP_RELEASES)
    parser.add_argument("--marker", help="also write the environment's description here")
    args = parser.parse_args(argv)
    ensure(args.version)
    if args.marker:
        description = read_marker(args.version) or {"pymdp_version": args.version, "pinned": True}
        with atomic(args.marker) as temporary:
            temporary.write_text(json.dumps(description, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
