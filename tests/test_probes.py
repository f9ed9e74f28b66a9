"""The probes against allocations of known size: the harness's calibration."""

import numpy as np
import pandas as pd
import pytest

from memsweep.harness import probes

from .conftest import memsweep


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    # In a fresh process, as every measurement runs: in a long-lived one (this test
    # session) glibc's dynamic mmap threshold has grown, so an 8 MB array can land in
    # heap pages that an earlier test freed and that are still resident.
    out = tmp_path_factory.mktemp("calibration") / "calibration.parquet"
    memsweep("calibrate", "--out", str(out), "--sizes-mb", "8", "64", "256")
    return pd.read_parquet(out)


@pytest.mark.parametrize("size_mb", [8, 64, 256])
def test_tracemalloc_within_one_percent(calibration, size_mb):
    row = calibration[
        (calibration.probe == probes.TRACEMALLOC)
        & (calibration.requested_bytes == size_mb * 1_000_000)
    ]
    assert len(row) == 1
    assert abs(row.error_fraction.item()) <= 0.01


@pytest.mark.parametrize("size_mb", [8, 64, 256])
def test_uss_within_five_percent(calibration, size_mb):
    row = calibration[
        (calibration.probe == probes.USS) & (calibration.requested_bytes == size_mb * 1_000_000)
    ]
    assert abs(row.error_fraction.item()) <= 0.05


@pytest.mark.parametrize("size_mb", [8, 64, 256])
def test_rss_anon_within_five_percent(calibration, size_mb):
    row = calibration[
        (calibration.probe == probes.ANON) & (calibration.requested_bytes == size_mb * 1_000_000)
    ]
    assert abs(row.error_fraction.item()) <= 0.05


def test_kernel_peak_sees_a_freed_temporary():
    kernel = probes.KernelPeak()
    if not kernel.available:
        pytest.skip(kernel.reason)
    with probes.Window(kernel) as window:
        block = np.ones(64_000_000 // 8)
        del block
    # The block is gone before the window ends; only the kernel's peak remembers it.
    assert window.kernel_peak.value == pytest.approx(64e6, rel=0.05)
    assert window.kernel_peak.probe == probes.VMHWM


def test_window_traced_peak_and_growth():
    probes.Heap().start()
    keep = []
    with probes.Window(probes.KernelPeak()) as window:
        temporary = np.ones(1_000_000)  # 8 MB, freed
        del temporary
        keep.append(np.ones(125_000))  # 1 MB, kept
    assert window.traced_peak.value == pytest.approx(8e6, rel=0.01)  # the temporary, freed first
    assert window.traced_growth.value == pytest.approx(1e6, rel=0.01)


def test_an_empty_window_measures_next_to_nothing():
    # The harness's own reads of /proc must fall outside the traced window.
    probes.Heap().start()
    with probes.Window(probes.KernelPeak()) as window:
        pass
    assert window.traced_peak.value < 1024
    assert window.traced_growth.value < 1024


def test_gc_monitor_counts_only_while_counting():
    import gc

    monitor = probes.GcMonitor(counting=False)
    with monitor:
        gc.collect()
        assert monitor.collections == [0, 0, 0]
        monitor.counting = True
        gc.collect()
    assert monitor.collections[2] == 1
    assert monitor.pause_seconds > 0
    gc.collect()
    assert monitor.collections[2] == 1  # uninstalled


def test_calibrate_command_writes_the_comparison(tmp_path):
    out = tmp_path / "calibration.parquet"
    result = memsweep("calibrate", "--out", str(out), "--sizes-mb", "8", "64")
    table = pd.read_parquet(out)
    assert {"probe", "requested_bytes", "measured_bytes", "error_fraction"} <= set(table.columns)
    assert set(table.probe) == {
        probes.TRACEMALLOC,
        probes.USS,
        probes.ANON,
        probes.RSS,
        probes.VMHWM,
    }
    assert "error_pct" in result.stdout
