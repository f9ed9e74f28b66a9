"""Writes proven under crashes: a writer that fails half-way leaves the previous file whole.

Every writer of the pipeline goes through :func:`memsweep.files.atomic` (the report's
figures, one set, through :func:`memsweep.files.atomic_folder`). Here the library call
that does the writing (``pq.write_table``, ``np.savez``, ``DataFrame.to_parquet``,
``DataFrame.to_csv``, ``Path.write_text``, ``Figure.savefig``: in the child process that
draws the figures, through a ``sitecustomize`` module) writes its real bytes,
cuts them in half and raises, as a full disk or a killed process would. The file at the
path must still be the previous one, byte for byte, with no temporary file beside it.
Both also flush what they wrote to the disk before the rename (``fsync``), and the
folder after it, so a crash of the machine keeps the old file or the new one too.

Mutation check: the last test swaps ``atomic`` for a writer that writes straight to the
final path and shows that the same check then fails for every writer (the half-written
bytes land on the previous file), so these tests can tell an atomic writer from one
that is not.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
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
from memsweep.report import build, queries
from memsweep.results import aggregate, schema
from memsweep.world.base import WorldSettings

from .conftest import tiny_config
from .test_report_units import CSR, DENSE, make_df, ranked_table, row
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
        observations=np.full((steps, 1), version),
        actions=np.zeros((steps, 1), int),
        qs=np.full((steps, states), 1 / states),
        q_pi=np.full((steps, 5), 1 / 5),
        world=WorldSettings(grid=3),
        policy_len=1,
    ).save(folder / "reference.npz")


def calibration_table(folder: Path, version: int) -> None:
    calibration.write(folder / "calibration.parquet", sizes_kb=[version])


def report(folder: Path, version: int) -> None:
    """The report (Markdown, HTML, figures) of a made-up table whose figures scale with
    the version."""
    inputs = folder / "inputs"
    inputs.mkdir(exist_ok=True)
    per_agent = [row(c, "build", "agents", "per_agent_bytes", "tracemalloc", mb * 1e6)
                 for c, mb in ((DENSE, 5), (CSR, 2))]  # fmt: skip
    frame = pd.concat([ranked_table(), make_df(*per_agent)], ignore_index=True)
    frame["value"] *= version  # the figure of memory per agent shows it
    plan = queries.configurations(frame).assign(status="run", reason=None, predicted_mb=100.0)
    frame.to_parquet(inputs / "measurements.parquet")
    plan.to_parquet(inputs / "plan.parquet")
    pd.DataFrame({"probe": pd.Series([], dtype=str)}).to_parquet(inputs / "calibration.parquet")
    out = folder / "report"
    build.write(
        *(inputs / f"{name}.parquet" for name in ("measurements", "plan", "calibration")),
        out_markdown=out / "hotspots.md",
        out_html=out / "hotspots.html",
    )


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
    Writer("report md", report, "report/hotspots.md", pathlib.Path, "write_text", first),
    Writer("report html", report, "report/hotspots.html", pathlib.Path, "write_text", first),
]  # fmt: skip


@pytest.fixture(autouse=True)
def quiet_calibration(monkeypatch):
    """Calibration's own measuring (it starts tracemalloc in this process) is not what is
    tested here: its rows stand in, sized by the version."""

    def rows(sizes_kb, repeats):
        return [
            {"probe": "rss_anon", "requested_bytes": size * 1_000,
             "measured_bytes": size * 1_000, "error_fraction": 0.0}
            for size in sizes_kb
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


def digest(path: Path) -> str:
    """A file's content as a short string: the assertions compare these, so that a failure
    (expected, where a mutation is caught) is not explained by diffing megabytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_a_crash_leaves_the_previous_file(writer: Writer, folder: Path, monkeypatch) -> None:
    path = folder / writer.file
    writer.write(folder, 1)
    previous = digest(path)
    writes: list[Path] = []
    real = getattr(writer.owner, writer.attribute)
    broken = half_then_fail(real, path.name, writer.where, writes)
    with monkeypatch.context() as patch:
        patch.setattr(writer.owner, writer.attribute, broken)
        with pytest.raises(Injected):
            writer.write(folder, 2)
    assert writes, f"{writer.name}: the injected write never ran"
    assert all(w.parent == path.parent for w in writes)  # beside it: the rename stays atomic
    assert digest(path) == previous, f"{writer.name}: the previous file was damaged"
    assert temporaries(folder) == [], f"{writer.name}: a temporary file was left"
    writer.write(folder, 2)  # without the fault, the new version replaces the old one whole
    assert digest(path) != previous
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
    for module in (files, schema, aggregate, reference, calibration, build):
        monkeypatch.setattr(module, "atomic", straight_to_the_path)
    with pytest.raises(AssertionError, match="previous file was damaged"):
        check_a_crash_leaves_the_previous_file(writer, tmp_path, monkeypatch)


# The report's figures: one set, swapped whole -----------------------------------------------
def figures_in(folder: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted((folder / "report" / "figures").iterdir())}


# The figures are drawn in a child process (report/figures.py, drawn_beside): the fault is
# put there by a sitecustomize module on the child's PYTHONPATH, which Python imports as
# it starts. The second figure: half of it written, then a crash.
BROKEN_SAVEFIG = """
import os
from matplotlib.figure import Figure

real, drawn = Figure.savefig, []


def broken(figure, path, *args, **kwargs):
    drawn.append(path)
    real(figure, path, *args, **kwargs)
    if len(drawn) == 2:
        size = os.path.getsize(path)
        with open(path, "r+b") as handle:
            handle.truncate(size // 2)
        raise RuntimeError(f"Injected: disk full half-way through {os.path.basename(path)}")


Figure.savefig = broken
"""


def check_a_crash_leaves_the_previous_figures(folder: Path, monkeypatch) -> None:
    report(folder, 1)
    previous, page = figures_in(folder), digest(folder / "report" / "hotspots.md")
    assert len(previous) > 2
    fault = folder / "fault"
    fault.mkdir()
    (fault / "sitecustomize.py").write_text(BROKEN_SAVEFIG)
    with monkeypatch.context() as patch:
        patch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(fault), os.environ.get("PYTHONPATH")]))
        )
        with pytest.raises(RuntimeError, match="Injected: disk full half-way"):
            report(folder, 2)
    assert figures_in(folder) == previous, "the previous figures were damaged"
    assert digest(folder / "report" / "hotspots.md") == page
    assert temporaries(folder) == []
    report(folder, 2)  # without the fault, the new set replaces the old one whole
    assert figures_in(folder).keys() == previous.keys()
    assert figures_in(folder) != previous
    assert temporaries(folder) == []


def test_a_crash_half_way_through_the_figures_leaves_the_previous_ones(tmp_path, monkeypatch):
    check_a_crash_leaves_the_previous_figures(tmp_path, monkeypatch)


@contextlib.contextmanager
def straight_into_the_folder(path):
    """The mutation: ``atomic_folder`` that draws into the final folder itself."""
    Path(path).mkdir(parents=True, exist_ok=True)
    yield Path(path)


def test_figures_drawn_into_their_folder_are_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "atomic_folder", straight_into_the_folder)
    with pytest.raises(AssertionError, match="previous figures were damaged"):
        check_a_crash_leaves_the_previous_figures(tmp_path, monkeypatch)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two renames"])
def test_a_folder_is_replaced_whole(tmp_path, monkeypatch, exchange):
    if not exchange:  # a system without renameat2: the old folder moves aside first
        monkeypatch.setattr(files, "_exchange", lambda first, second: False)
    target = tmp_path / "figures"
    for version, names in ((1, ("a", "b", "old")), (2, ("a", "b"))):
        with files.atomic_folder(target) as folder:
            assert folder.parent == tmp_path and folder != target
            for name in names:
                (folder / f"{name}.png").write_text(f"{name} {version}")
    assert {p.name: p.read_text() for p in target.iterdir()} == {"a.png": "a 2", "b.png": "b 2"}
    assert temporaries(tmp_path) == []


def test_a_folder_that_a_killed_writer_left_is_removed(tmp_path):
    target = tmp_path / "figures"
    left = tmp_path / ".figures.tmp4242"  # another process's, killed outright
    (left / "half").mkdir(parents=True)
    (left / "half" / "a.png").write_bytes(b"\x89PNG")
    files.remove_partials(target)
    assert temporaries(tmp_path) == []


# Durability: flushed to the disk, not only renamed -------------------------------------------
def flushes(monkeypatch) -> list[tuple[str, str]]:
    """Each ``fsync`` (of which path) and each rename, in order, as the writers make them."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source, destination):
        events.append(("rename", str(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    return events


def test_a_file_is_flushed_before_its_rename_and_its_folder_after(tmp_path, monkeypatch):
    events = flushes(monkeypatch)
    path = tmp_path / "table.csv"
    with files.atomic(path) as temporary:
        temporary.write_text("a,b\n")
    temporary_name = str(tmp_path / f".table.csv.tmp{os.getpid()}")
    assert events == [("fsync", temporary_name), ("rename", str(path)), ("fsync", str(tmp_path))]
    events.clear()
    with files.atomic(path, durable=False) as temporary:  # scratch: renamed, not flushed
        temporary.write_text("a,b\n")
    assert events == [("rename", str(path))]
