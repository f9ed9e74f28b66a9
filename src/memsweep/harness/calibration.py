"""Every memory probe against allocations of known size, on this machine.

A probe's figures are trusted only as far as this comparison goes: the report shows
the table beside its findings.
"""

from __future__ import annotations

import numpy as np

from memsweep.files import atomic
from memsweep.harness import probes

DEFAULT_SIZES_MB = (8, 64, 256)


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


def write(path, sizes_mb=DEFAULT_SIZES_MB):
    """Calibrate and write the table to ``path`` (Parquet, atomically); returns the table."""
    import pandas as pd

    sizes = list(sizes_mb)
    bad = [size for size in sizes if size <= 0]
    if bad:
        raise ValueError(f"allocation sizes must be positive MB, got {bad}")
    table = pd.DataFrame(calibrate(tuple(sizes)))
    with atomic(path) as temporary:
        table.to_parquet(temporary, index=False)
    return table
