"""Saved measurement sets (``results/baselines/NAME/``) that later sweeps compare against.

A sweep rewrites ``results/measurements.parquet``; a baseline keeps a copy of it, with the
calibration it was judged by (so a later calibration on another machine does not move
the resolution floor of an old comparison) and a small JSON saying what measured it.
A baseline is never overwritten unless asked: it is the reference of past claims.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from memsweep.files import atomic_folder
from memsweep.results.schema import SchemaError, read_frame

FOLDER = "baselines"
MEASUREMENTS = "measurements.parquet"
CALIBRATION = "calibration.parquet"
PROVENANCE = "provenance.json"
# A folder name on every file system, never hidden, never a path.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class BaselineError(ValueError):
    """A baseline that cannot be saved or found: one line for the user."""


def valid(name: str) -> bool:
    return bool(_NAME.match(name))


def folder(results: str | Path, name: str) -> Path:
    return Path(results) / FOLDER / name


def save(name: str, results: str | Path = "results", force: bool = False) -> Path:
    """Copy ``results``' measurements (and calibration, if any) to a baseline ``name``,
    with its provenance; refused where ``name`` exists unless ``force``."""
    if not valid(name):
        raise BaselineError(f"{name!r}: a baseline name is letters, digits, '.', '_', '-'")
    results = Path(results)
    source = results / MEASUREMENTS
    if not source.is_file():
        raise BaselineError(f"{source}: no such file (run the sweep's aggregate first)")
    target = folder(results, name)
    if target.exists() and not force:
        raise BaselineError(f"baseline {name!r} exists ({target}); --force replaces it")
    try:
        frame = read_frame(source)
    except (SchemaError, OSError) as error:
        raise BaselineError(str(error)) from None
    with atomic_folder(target) as temporary:
        shutil.copy2(source, temporary / MEASUREMENTS)
        if (results / CALIBRATION).is_file():
            shutil.copy2(results / CALIBRATION, temporary / CALIBRATION)
        described = provenance(frame, results) | {"name": name}
        (temporary / PROVENANCE).write_text(json.dumps(described, indent=1) + "\n")
    return target


def provenance(frame, results: Path) -> dict:
    """What measured a set: versions (each value present), when, how much, and the digest
    of the code per backend where the sweep's fitted predictor recorded one."""

    def held(column: str) -> list[str]:
        return sorted(str(v) for v in frame[column].dropna().unique())

    started = held("started_at")
    described = {
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(results / MEASUREMENTS),
        "configurations": int(frame.config_id.nunique()),
        "rows": len(frame),
        "measured_from": started[0] if started else None,
        "measured_to": started[-1] if started else None,
        "calibration": (results / CALIBRATION).is_file(),
        **{column: held(column) for column in ("memsweep_version", "pymdp_version")},
        **{column: held(column) for column in ("numpy_version", "jax_version", "hostname")},
    }
    predictor = results / "model" / "predictor.json"
    try:
        described["code_digests"] = json.loads(predictor.read_text())["code_digests"]
    except (OSError, ValueError, KeyError, TypeError):
        described["code_digests"] = None  # no fitted predictor: the digest is not known
    return described


def listed(results: str | Path = "results") -> list[dict]:
    """Every saved baseline's provenance (name first), by name."""
    root, found = Path(results) / FOLDER, []
    paths = sorted(root.iterdir()) if root.is_dir() else []
    for path in paths:
        if not valid(path.name) or not (path / MEASUREMENTS).is_file():
            continue  # a writer's temporary folder (hidden), or not a baseline
        try:
            described = json.loads((path / PROVENANCE).read_text())
        except (OSError, ValueError):
            described = {}
        found.append({**described, "name": path.name, "path": str(path)})
    return found
