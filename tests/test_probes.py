"""The probes against allocations of known size: the harness's calibration."""

import numpy as np
import pandas as pd
import pytest

from memsweep.harness import calibration as calibration_module
from memsweep.harness import probes

from .conftest import memsweep

SIZES_KB = (8_000, 64_000, 256_000)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    # Each size in fresh processes, as every measurement runs: in a long-lived one (this
    # test session) glibc's dynamic mmap threshold has grown, so an 8 MB array can land in
    # heap pages that an earlier test freed and that are still resident.
    out = tmp_path_factory.mktemp("calibration") / "calibration.parquet"
    result = memsweep("calibrate", "--out", str(out), "--sizes-kb", *map(str, SIZES_KB))
    return pd.read_parquet(out), result.stdout


@pytest.fixture(scope="module")
def calibration(calibrated):
    return calibrated[0]


def test_the_readme_quotes_the_limits():
    # README: "the tests require tracemalloc within 1 % and USS within 5 %".
    assert calibration_module.LIMITS[probes.TRACEMALLOC].fraction == 0.01
    assert calibration_module.LIMITS[probes.USS].fraction == 0.05


def test_every_calibrated_probe_has_a_stated_limit(calibration):
    assert set(calibration.probe) == set(calibration_module.LIMITS)
    for limit in calibration_module.LIMITS.values():
        assert 0 < limit.fraction < 1 and limit.why


@pytest.mark.parametrize("size_kb", SIZES_KB)
@pytest.mark.parametrize("probe", list(calibration_module.LIMITS))
def test_each_probe_is_within_its_limit(calibration, probe, size_kb):
    limit = calibration_module.LIMITS[probe]
    assert size_kb * 1_000 >= limit.from_bytes  # every size here is one the limit covers
    rows = calibration[
        (calibration.probe == probe) & (calibration.requested_bytes == size_kb * 1_000)
    ]
    # A level for every probe; a peak too for those that measure one.
    expected = {"level", "peak"} if probe in probes.peaks() else {"level"}
    assert set(rows.reading) == expected
    for reading, error in zip(rows.reading, rows.error_fraction, strict=True):
        assert abs(error) <= limit.fraction, reading


def test_calibrate_ends_with_a_verdict_per_probe(calibrated):
    _, stdout = calibrated
    lines = stdout.strip().splitlines()
    verdicts = [line for line in lines if line.startswith(("PASS ", "FAIL "))]
    assert [line.split()[1].rstrip(":") for line in verdicts] == list(calibration_module.LIMITS)
    assert all(line.startswith("PASS ") for line in verdicts), verdicts
    assert "PASS tracemalloc: worst +" in stdout and "limit ±1 % from 1 MB" in stdout
    assert all("; resolution " in line for line in verdicts)
    assert lines[-1].endswith(": written")


def test_a_probe_past_its_limit_or_without_one_fails():
    rows = [
        {"probe": probes.TRACEMALLOC, "requested_bytes": 8_000_000, "error_fraction": 0.001},
        {"probe": probes.TRACEMALLOC, "requested_bytes": 64_000_000, "error_fraction": -0.02},
        {"probe": probes.USS, "requested_bytes": 8_000_000, "error_fraction": float("nan")},
        {"probe": probes.USS, "requested_bytes": 64_000_000, "error_fraction": 0.0},
        {"probe": "made_up", "requested_bytes": 8_000_000, "error_fraction": 0.0},
    ]
    verdicts = {v.probe: v for v in calibration_module.verdicts(rows)}
    assert verdicts[probes.TRACEMALLOC].worst == -0.02 and not verdicts[probes.TRACEMALLOC].passed
    assert verdicts[probes.TRACEMALLOC].line() == (
        "FAIL tracemalloc: worst -2.00 % (at 64 MB), limit ±1 % from 1 MB; resolution 8 MB (±10 %)"
    )
    assert not verdicts[probes.USS].passed  # a probe that read nothing
    assert "no limit stated" in verdicts["made_up"].line()


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
    result = memsweep("calibrate", "--out", str(out), "--sizes-kb", "8000", "--repeats", "1")
    table = pd.read_parquet(out)
    assert list(table.columns) == [
        "probe", "reading", "requested_bytes", "measured_bytes", "error_fraction", "repeats",
        "spread_bytes", "resolution_bytes",
    ]  # fmt: skip
    assert set(table.probe) == {
        probes.TRACEMALLOC,
        probes.USS,
        probes.ANON,
        probes.RSS,
        probes.VMHWM,
    }
    assert "error_pct" in result.stdout
