"""Every memory probe against allocations of known size, on this machine.

Each size is measured in a fresh process (``python -m memsweep.harness.calibration
BYTES``), several times, and the median kept: in a long-lived process freed pages stay
resident and a later allocation reuses them unseen. Each process takes two readings,
as the harness does: a *level* (an array allocated and kept, every level probe read
before and after) and a *peak* (a temporary allocated and freed inside a
:class:`~memsweep.harness.probes.Window`, as a per-call peak is measured).

Two verdicts come of the table. :func:`resolution` is a probe's smallest calibrated
size it measures within ±10 % (:data:`TOLERANCE`), and every larger one too: the
report marks a figure below it instead of using it (it may read 0). :data:`LIMITS`
states, once, how far each probe may be off from a given size up before its figures
are not to be trusted (``memsweep calibrate`` prints one pass/fail line per probe,
with its resolution; ``tests/test_probes.py`` holds the probes to them).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from memsweep.files import atomic
from memsweep.harness import probes
from memsweep.world.checks import Checks

KB = 1000  # decimal units throughout, as the report's figures
# From a page (4 KB) up to the figures the report ranks: 27 fresh processes, ~10 s of CPU.
DEFAULT_SIZES_KB = (4, 16, 64, 256, 1_000, 2_000, 8_000, 64_000, 256_000)
# The kernel's peak of a freed temporary varies by up to ~150 KB from one process to the
# next (the level probes by a page at most): the median of three holds.
REPEATS = 3
SIZE_BOUNDS = {"exclusiveMinimum": 0}  # allocation sizes (KB), in JSON schema's words
REPEAT_BOUNDS = {"minimum": 1}
# A probe resolves a size when its reading is within this share of it (every reading of
# it: level and peak); its resolution is the smallest size from which on it always does.
TOLERANCE = 0.10
LEVEL, PEAK = "level", "peak"  # the two readings of each size (the ``reading`` column)
MODULE = "memsweep.harness.calibration"


@dataclass(frozen=True)
class Limit:
    """How far a probe's reading of a known allocation may be off (|error| / size), for
    every calibrated size from ``from_bytes`` up (below, :func:`resolution` speaks)."""

    fraction: float
    why: str  # the measured figures it stands on, and what the margin is for
    from_bytes: int = 1_000 * KB


# Measured on the 2-core reference machine (Linux 6.18, glibc 2.36), each size in fresh
# processes, from 1 MB up: level errors are positive and fixed in bytes (a page's
# rounding, numpy's bookkeeping), so the largest is at the smallest size: at 1 MB,
# +0.03 % for tracemalloc and +0.35 % for the four others; at 8 MB, +0.004 % and
# +0.05 %. The kernel's peak of a freed temporary reads low by up to ~150 KB (the
# resident-set counter it is taken from is kept per CPU and summed lazily): -4.6 % (single
# processes -7 to -12 %) at 1 MB, -2.0 to -2.6 % at 8 MB. Below 1 MB the process probes
# read next to nothing (see :func:`resolution`): glibc serves the array from heap pages
# that are already resident.
LIMITS: dict[str, Limit] = {
    probes.TRACEMALLOC: Limit(
        0.01,
        "exact accounting: measured +0.03 % (peak) at 1 MB, numpy's few hundred bytes of "
        "bookkeeping; 1 % fails only a probe that misses or double-counts buffers",
    ),
    probes.ANON: Limit(
        0.05,
        "whole 4 KiB pages: measured +0.35 % at 1 MB, +0.05 % at 8 MB; 5 % leaves room "
        "for the process's other threads touching heap pages inside the window",
    ),
    probes.USS: Limit(
        0.05,
        "whole pages, as rss_anon: measured +0.35 % at 1 MB, +0.05 % at 8 MB; 5 % leaves "
        "room for another process mapping or unmapping a library this one holds",
    ),
    probes.RSS: Limit(
        0.05,
        "as rss_anon, plus library pages: measured +0.35 % at 1 MB, +0.05 % at 8 MB; "
        "5 % leaves room for library code paged in inside the window",
    ),
    probes.VMHWM: Limit(
        0.05,
        "the kernel's peak above the resident set before: a kept array +0.35 % at 1 MB, "
        "a freed temporary -2.6 % at 8 MB (-12 % at 1 MB in one process: the per-CPU "
        "counter's lag), so from 8 MB; 5 % as for psutil_rss, whose pages it counts",
        from_bytes=8_000 * KB,
    ),
}


def size_text(size: float) -> str:
    """``4 KB``, ``1 MB``, ``256 MB`` (decimal); infinite: ``none of the calibrated sizes``."""
    if math.isinf(size):
        return "none of the calibrated sizes"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size:g} B"


def _records(rows) -> list[dict]:
    """Dicts from a DataFrame's records or any iterable of dicts."""
    return rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)


def _within(error: float) -> bool:
    return not math.isnan(error) and abs(error) <= TOLERANCE  # read nothing: not within


def resolution(calibration) -> dict[str, float]:
    """Each calibrated probe's resolution in bytes: its smallest calibrated size such that
    every reading of it and of every larger size is within :data:`TOLERANCE`.

    ``calibration``: rows (a DataFrame or dicts) with ``probe``, ``requested_bytes`` and
    ``error_fraction``. ``math.inf`` for a probe off even at the largest size. The one
    place a resolution is computed: the calibration file and the report both use it.
    """
    within: dict[str, dict[float, bool]] = {}
    for row in _records(calibration):
        sizes = within.setdefault(row["probe"], {})
        size = float(row["requested_bytes"])
        sizes[size] = sizes.get(size, True) and _within(row["error_fraction"])
    found = {}
    for probe, sizes in within.items():
        smallest = math.inf
        for size in sorted(sizes, reverse=True):
            if not sizes[size]:
                break
            smallest = size
        found[probe] = smallest
    return found


@dataclass(frozen=True)
class Verdict:
    """One probe's worst error from its limit's size up, against that limit."""

    probe: str
    worst: float  # the error fraction of largest magnitude (NaN: read nothing)
    worst_bytes: int  # the allocation it was measured on (0: no size to judge)
    limit: Limit | None
    resolution: float = math.nan  # bytes, from :func:`resolution`

    @property
    def passed(self) -> bool:
        return self.limit is not None and abs(self.worst) <= self.limit.fraction

    def line(self) -> str:
        """``PASS tracemalloc: worst +0.03 % (at 8 MB), limit ±1 % from 1 MB; resolution
        4 KB (±10 %)``."""
        resolved = f"resolution {size_text(self.resolution)} (±{100 * TOLERANCE:g} %)"
        if self.limit is None:
            return f"FAIL {self.probe}: no limit stated in harness/calibration.py; {resolved}"
        limit = f"limit ±{100 * self.limit.fraction:g} % from {size_text(self.limit.from_bytes)}"
        if not self.worst_bytes:
            return f"FAIL {self.probe}: no calibrated size to judge, {limit}; {resolved}"
        at = f"(at {size_text(self.worst_bytes)})"
        if math.isnan(self.worst):
            return f"FAIL {self.probe}: read nothing {at}, {limit}; {resolved}"
        worst = f"worst {100 * self.worst:+.2f} % {at}"
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} {self.probe}: {worst}, {limit}; {resolved}"


def verdicts(rows) -> list[Verdict]:
    """Each calibrated probe's worst error from its limit's size up, against the limit, in
    the order of ``rows`` (dicts or a DataFrame: ``probe``, ``requested_bytes``,
    ``error_fraction``); a probe with no limit or no size to judge fails."""
    rows = _records(rows)
    resolved = resolution(rows)

    def magnitude(row) -> float:  # a probe that read nothing (NaN) is the worst: it fails
        error = row["error_fraction"]
        return math.inf if math.isnan(error) else abs(error)

    worst: dict[str, dict | None] = {}
    for row in rows:
        limit = LIMITS.get(row["probe"])
        kept = worst.setdefault(row["probe"], None)
        if limit is not None and row["requested_bytes"] < limit.from_bytes:
            continue
        if kept is None or magnitude(row) > magnitude(kept):
            worst[row["probe"]] = row
    return [
        Verdict(
            probe,
            row["error_fraction"] if row else math.nan,
            int(row["requested_bytes"]) if row else 0,
            LIMITS.get(probe),
            resolved[probe],
        )
        for probe, row in worst.items()
    ]


def _read_once(size: int) -> list[tuple[str, str, float]]:
    """In this fresh process: ``size`` bytes kept (a level) and freed (a peak), as each
    probe sees them: ``(probe, reading, measured bytes)``."""
    probes.Heap().start()  # tracemalloc reads 0 unless it traces
    kernel = probes.KernelPeak()
    # The process probes first and tracemalloc last, so that the reads of /proc (which
    # allocate) fall outside tracemalloc's two readings.
    process = [p for p in (*probes.levels(), probes.Resident) if p is not probes.Traced]
    probes.settle()
    before = {p.name: p.read().value for p in process}
    if kernel.available:
        kernel.reset()
    traced = probes.Traced.read().value
    block = np.ones(size // 8)  # np.ones writes every page: all of it is resident
    traced = probes.Traced.read().value - traced
    after = {p.name: p.read().value for p in process}
    found = [(probes.TRACEMALLOC, LEVEL, traced)]
    found += [(name, LEVEL, after[name] - before[name]) for name in before]
    # The kernel's peak is a resident-set figure: above the resident set before.
    found.append((probes.VMHWM, LEVEL, kernel.read().value - before[probes.RSS]))
    probes.settle()
    # ``block`` stays alive: the temporary cannot reuse its pages, only pages freed earlier.
    with probes.Window(kernel) as window:
        temporary = np.ones(size // 8)
        del temporary
    found.append((probes.TRACEMALLOC, PEAK, window.traced_peak.value))
    found.append((probes.VMHWM, PEAK, window.kernel_peak.value))
    del block
    return found


def _fresh(size: int) -> list[tuple[str, str, float]]:
    """:func:`_read_once` in a new Python process."""
    done = subprocess.run([sys.executable, "-m", MODULE, str(size)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"calibrating {size} bytes failed:\n{done.stderr}")
    return [tuple(found) for found in json.loads(done.stdout)]


def calibrate(sizes_kb=DEFAULT_SIZES_KB, repeats: int = REPEATS) -> list[dict]:
    """Measure each size ``repeats`` times, each in a fresh process; compare with the truth.

    Returns one row per probe, reading and size: ``probe``, ``reading`` (level | peak),
    ``requested_bytes``, ``measured_bytes`` (the median over repeats), ``error_fraction``,
    ``repeats``, ``spread_bytes`` (largest − smallest reading) and ``resolution_bytes``
    (the probe's, from :func:`resolution`; the same on each of its rows).
    """
    sizes = [int(size * KB) for size in sizes_kb]
    readings: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(repeats):  # sizes interleaved: a busy moment touches every size once
        for size in sizes:
            for probe, reading, value in _fresh(size):
                readings.setdefault((probe, reading, size), []).append(value)
    rows = []
    for (probe, reading, size), values in sorted(readings.items(), key=lambda item: item[0][2]):
        measured = float(np.median(values))
        rows.append(
            {
                "probe": probe,
                "reading": reading,
                "requested_bytes": size,
                "measured_bytes": measured,
                "error_fraction": (measured - size) / size,
                "repeats": len(values),
                "spread_bytes": float(np.ptp(values)),
            }
        )
    resolved = resolution(rows)
    return [row | {"resolution_bytes": resolved[row["probe"]]} for row in rows]


def check_sizes(sizes_kb) -> list:
    """The allocation sizes, or ValueError naming those outside :data:`SIZE_BOUNDS`."""
    sizes, checks = list(sizes_kb), Checks({"size": SIZE_BOUNDS})
    if not sizes:
        raise ValueError("no allocation sizes given")
    for size in sizes:
        failure = checks.failure("size", size)
        if failure:
            raise ValueError(f"allocation sizes (KB) must be {failure}, got {size}")
    return sizes


def write(path, sizes_kb=DEFAULT_SIZES_KB, repeats: int = REPEATS):
    """Calibrate and write the table to ``path`` (Parquet, atomically); returns the table."""
    import pandas as pd

    sizes = check_sizes(sizes_kb)
    table = pd.DataFrame(calibrate(tuple(sizes), repeats))
    with atomic(path) as temporary:
        table.to_parquet(temporary, index=False)
    return table


if __name__ == "__main__":  # one fresh process's readings, for :func:`calibrate`
    print(json.dumps(_read_once(int(sys.argv[1]))))
