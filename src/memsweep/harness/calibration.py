"""Every memory probe against allocations of known size, on this machine.

A probe's figures are trusted only as far as this comparison goes: the report shows
the table beside its findings, and :data:`LIMITS` states, once, how far each probe may
be off before its figures are not to be trusted (``memsweep calibrate`` ends with one
pass/fail line per probe against them; ``tests/test_probes.py`` holds the probes to them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memsweep.files import atomic
from memsweep.harness import probes
from memsweep.world.checks import Checks

DEFAULT_SIZES_MB = (8, 64, 256)
SIZE_BOUNDS = {"exclusiveMinimum": 0}  # allocation sizes (MB), in JSON schema's words


@dataclass(frozen=True)
class Limit:
    """How far a probe's reading of a known allocation may be off (|error| / size)."""

    fraction: float
    why: str  # the measured figures it stands on, and what the margin is for


# Measured on the 2-core reference machine (Linux 6.18, glibc 2.36), eight runs of
# `memsweep calibrate` at 1, 2, 4, 8, 16, 64 and 256 MB, three of them at once: every
# error was positive and fixed in bytes (a page's rounding, numpy's bookkeeping), so the
# largest is at the smallest size: at 1 MB, +0.21 % for tracemalloc and +0.35 % for
# the four others; at 8 MB (the smallest default), +0.03 % and +0.05 %.
LIMITS: dict[str, Limit] = {
    probes.TRACEMALLOC: Limit(
        0.01,
        "exact accounting: measured +0.21 % at 1 MB (numpy's 2 KB of bookkeeping), "
        "+0.03 % at 8 MB; 1 % fails only a probe that misses or double-counts buffers",
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
        "the kernel's peak above the resident set before: measured +0.35 % at 1 MB, "
        "+0.05 % at 8 MB; 5 % as for psutil_rss, whose pages it counts",
    ),
}


@dataclass(frozen=True)
class Verdict:
    """One probe's worst error over every size, against its limit."""

    probe: str
    worst: float  # the error fraction of largest magnitude
    worst_bytes: int  # the allocation it was measured on
    limit: Limit | None

    @property
    def passed(self) -> bool:
        return self.limit is not None and abs(self.worst) <= self.limit.fraction

    def line(self) -> str:
        """``PASS tracemalloc: worst +0.03 % (at 8 MB), limit ±1 %``."""
        size = f"at {self.worst_bytes / 1e6:g} MB"
        worst = f"worst {100 * self.worst:+.2f} % ({size})"
        if self.limit is None:
            return f"FAIL {self.probe}: {worst}, no limit stated in harness/calibration.py"
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} {self.probe}: {worst}, limit ±{100 * self.limit.fraction:g} %"


def verdicts(rows) -> list[Verdict]:
    """Each calibrated probe's worst error against its limit, in the order of ``rows``
    (dicts or a DataFrame's records: ``probe``, ``requested_bytes``, ``error_fraction``)."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")

    def magnitude(row) -> float:  # a probe that read nothing (NaN) is the worst: it fails
        error = row["error_fraction"]
        return math.inf if math.isnan(error) else abs(error)

    worst: dict[str, dict] = {}
    for row in rows:
        kept = worst.get(row["probe"])
        if kept is None or magnitude(row) > magnitude(kept):
            worst[row["probe"]] = row
    return [
        Verdict(probe, row["error_fraction"], int(row["requested_bytes"]), LIMITS.get(probe))
        for probe, row in worst.items()
    ]


def calibrate(sizes_mb=DEFAULT_SIZES_MB) -> list[dict]:
    """Allocate and touch arrays of known size; compare each probe with the truth.

    Returns one row per probe and size: ``probe``, ``requested_bytes``,
    ``measured_bytes``, ``error_fraction``.
    """
    probes.Heap().start()  # tracemalloc reads 0 unless it traces
    kernel = probes.KernelPeak()
    read = (*probes.levels(), probes.Resident)  # every probe that reads a level
    rows = []
    for size_mb in sizes_mb:
        requested = size_mb * 1_000_000
        probes.settle()
        before = {probe.name: probe.read().value for probe in read}
        if kernel.available:
            kernel.reset()
        block = np.ones(requested // 8)  # np.ones writes every page: all of it is resident
        measured = {probe.name: probe.read().value - before[probe.name] for probe in read}
        # The kernel's peak is a resident-set figure: above the resident set before.
        measured[probes.VMHWM] = kernel.read().value - before[probes.RSS]
        del block
        probes.settle()
        for probe, value in measured.items():
            rows.append(
                {
                    "probe": probe,
                    "requested_bytes": requested,
                    "measured_bytes": value,
                    "error_fraction": (value - requested) / requested,
                }
            )
    return rows


def check_sizes(sizes_mb) -> list:
    """The allocation sizes, or ValueError naming those outside :data:`SIZE_BOUNDS`."""
    sizes, checks = list(sizes_mb), Checks({"size": SIZE_BOUNDS})
    if not sizes:
        raise ValueError("no allocation sizes given")
    for size in sizes:
        failure = checks.failure("size", size)
        if failure:
            raise ValueError(f"allocation sizes (MB) must be {failure}, got {size}")
    return sizes


def write(path, sizes_mb=DEFAULT_SIZES_MB):
    """Calibrate and write the table to ``path`` (Parquet, atomically); returns the table."""
    import pandas as pd

    sizes = check_sizes(sizes_mb)
    table = pd.DataFrame(calibrate(tuple(sizes)))
    with atomic(path) as temporary:
        table.to_parquet(temporary, index=False)
    return table
