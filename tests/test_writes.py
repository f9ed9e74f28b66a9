"""Writes proven under crashes: a writer that fails half-way leaves the previous file whole.

Every writer of the pipeline goes through :func:`memsweep.files.atomic`. Here the
library call that does the writing (``pq.write_table``, ``np.savez``,
``DataFrame.to_parquet``, ``DataFrame.to_csv``, ``Path.write_text``) writes its real
bytes, cuts them in half and raises, as a full disk or a killed process would. The
file at the path must still be the previous one, byte for byte, with no temporary
file beside it.

Mutation check: the last test swaps ``atomic`` for a writer that writes straight to the
final path and shows that the same check then fails for every writer (the half-written
bytes land on the previous file), so these tests can tell an atomic writer from one
that is not.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from memsweep import files
from memsweep.harness import calibration, reference
from memsweep.harness.reference import Reference
from memsweep.plan import sweep
from memsweep.results import aggregate, schema
from memsweep.world.gridworld import GridWorld

from .conftest import tiny_config
from .test_schema import table


class Injected(OSError):
    """The fault a test injects (a disk that fills up half-way)."""


@dataclass
class Writer:
    name: str
    write: Callable[[Path, int], None]  # writes version ``v`` of the file at the path
    file: str  # the file the check watches, relative to the folder written into
    owner: object  # owner.attribute: the library call that does the writing
    attribute: str
    where: Callable[[tuple], object]  # the path that call writes to, from its arguments


def measurements(folder: Path, version: int) -> None:
    schema.write_measurements(table(value=float(version)), folder / "m.parquet")


def plan(folder: Path, version: int) -> None:
    sweep.write_plan(sweep.plan(tiny_config("model", "seed", version)), folder / "plan.parquet")


def aggregated(folder: Path, version: int) -> None:
    """aggregate.run over one measurement file (its value changes with the version)."""
    inputs = folder / "inputs"
    path = inputs / "backend=x/storage=dense/grid=5/policy_len=1.parquet"
    rows = table(value=version * 1e7, phase="summary", metric="peak_bytes", probe="tracemalloc")
    schema.write_measurements(rows, path)
    if not (inputs / "plan.parquet").exists():
        sweep.write_plan(sweep.plan(tiny_config()), inputs / "plan.parquet")
    out, tables = folder / "measurements.parquet", folder / "tables"
    aggregate.run([path], inputs / "plan.parquet", out, tables)


def reference_trace(folder: Path, version: int) -> None:
    steps, states = 4, 9
    Reference(
        observations=np.full(steps, version),
        actions=np.zeros(steps, int),
        qs=np.full((steps, states), 1 / states),
        q_pi=np.full((steps, 5), 1 / 5),
        world=GridWorld(grid=3),
        policy_len=1,
    ).save(folder / "reference.npz")


def calibration_table(folder: Path, version: int) -> None:
    calibration.write(folder / "calibration.parquet", sizes_mb=[version])


def first(args):
    return args[0]


def second(args):
    return args[1]


WRITERS = [
    Writer("measurements", measurements, "m.parquet", pq, "write_table", second),
    Writer("plan", plan, "plan.parquet", pd.DataFrame, "to_parquet", second),
    Writer("aggregate table", aggregated, "measurements.parquet", pq, "write_table", second),
    Writer("aggregate csv", aggregated, "tables/peak_bytes.csv", pd.DataFrame, "to_csv", second),
    Writer("aggregate md", aggregated, "tables/peak_bytes.md", pathlib.Path, "write_text", first),
    Writer("reference", reference_trace, "reference.npz", reference.np, "savez", first),
    Writer("calibration", calibration_table, "calibration.parquet", pd.DataFrame, "to_parquet",
           second),
]  # fmt: skip


@pytest.fixture(autouse=True)
def quiet_calibration(monkeypatch):
    """Calibration's own measuring (it starts tracemalloc in this process) is not what is
    tested here: its rows stand in, sized by the version."""

    def rows(sizes_mb):
        return [
            {"probe": "rss_anon", "requested_bytes": size * 1_000_000,
             "measured_bytes": size * 1_000_000, "error_fraction": 0.0}
            for size in sizes_mb
        ]  # fmt: skip

    monkeypatch.setattr(calibration, "calibrate", rows)


def temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def half_then_fail(real, watched: str, where, writes: list):
    """``real``; where it writes the watched file, then those bytes cut in half and a crash."""

    def broken(*args, **kwargs):
        target = Path(where(args))
        if watched not in target.name:  # another file of the same writer: written whole
            return real(*args, **kwargs)
        writes.append(target)
        real(*args, **kwargs)
        size = target.stat().st_size
        with open(target, "r+b") as handle:
            handle.truncate(size // 2)
        raise Injected(f"disk full half-way through {target.name}")

    return broken


def check_a_crash_leaves_the_previous_file(writer: Writer, folder: Path, monkeypatch) -> None:
    path = folder / writer.file
    writer.write(folder, 1)
    previous = path.read_bytes()
    writes: list[Path] = []
    real = getattr(writer.owner, writer.attribute)
    broken = half_then_fail(real, path.name, writer.where, writes)
    with monkeypatch.context() as patch:
        patch.setattr(writer.owner, writer.attribute, broken)
        with pytest.raises(Injected):
            writer.write(folder, 2)
    assert writes, f"{writer.name}: the injected write never ran"
    assert all(w.parent == path.parent for w in writes)  # beside it: the rename stays atomic
    assert path.read_bytes() == previous, f"{writer.name}: the previous file was damaged"
    assert temporaries(folder) == [], f"{writer.name}: a temporary file was left"
    writer.write(folder, 2)  # without the fault, the new version replaces the old one whole
    assert path.read_bytes() != previous
    assert temporaries(folder) == []


@pytest.mark.parametrize("writer", WRITERS, ids=[w.name for w in WRITERS])
def test_a_crash_half_way_leaves_the_previous_file_whole(writer, tmp_path, monkeypatch):
    check_a_crash_leaves_the_previous_file(writer, tmp_path, monkeypatch)


@contextlib.contextmanager
def straight_to_the_path(path, suffix=""):
    """The mutation: ``atomic`` that writes to the final path itself (its folder made)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    yield Path(path)


@pytest.mark.parametrize("writer", WRITERS, ids=[w.name for w in WRITERS])
def test_a_writer_that_is_not_atomic_is_caught(writer, tmp_path, monkeypatch):
    for module in (files, schema, aggregate, reference, calibration):
        monkeypatch.setattr(module, "atomic", straight_to_the_path)
    with pytest.raises(AssertionError, match="previous file was damaged"):
        check_a_crash_leaves_the_previous_file(writer, tmp_path, monkeypatch)
