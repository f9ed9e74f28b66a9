"""``memsweep compare`` and ``memsweep baseline`` on two made-up measurement sets.

The sets differ in known ways, one of each kind the rules must tell apart: a memory
change above the threshold, one below it, one below the probe's resolution; a time
change that is significant and one that is not (and one significant but small); a
precision change. Every figure's verdict is asserted exactly. Times are made-up
samples (fixed seeds), never timed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from memsweep import cli
from memsweep.results import baselines, compare
from memsweep.results.schema import to_frame, to_table, write_measurements

from .conftest import ROOT

SETTINGS = {
    "backend": "lean", "storage": "dense", "dtype": "float64", "grid": 3, "agents": 1,
    "sharing": "private", "policy_len": 1, "obs_noise": 0.1, "noise_kind": "local",
    "move_success": 0.9, "steps": 30, "repeats": 1, "seed": 0, "layout": "objects",
}  # fmt: skip
RESOLUTION = {"vmhwm": 1e6, "tracemalloc": 4e3}


def config(**axes) -> dict:
    settings = SETTINGS | axes
    # The id hashes every setting: a NEW set with another dtype has other ids.
    name = "-".join(str(settings[a]) for a in ("storage", "dtype", "grid"))
    return settings | {"states": settings["grid"] ** 2, "config_id": name}


def row(cfg, phase, operation, metric, probe, value, unit="B", step=None, status="ok"):
    return cfg | {
        "repeat": None if step is None else 0, "step": step, "phase": phase,
        "operation": operation, "metric": metric, "probe": probe,
        "value": None if status != "ok" else float(value), "unit": unit, "status": status,
        "reason": None if status == "ok" else "moved less than a page",
        "memsweep_version": "0.1.0", "pymdp_version": "1.0.4",
    }  # fmt: skip


def summary(cfg, metric, probe, value, status="ok"):
    return row(cfg, "summary", "all", metric, probe, value, status=status)


def precision(cfg, metric, value):
    return row(cfg, "precision", "step", metric, "reference_trace", value, unit="1")


def steps(cfg, seconds, operations=("step",)):
    """One row per step and operation; a step's time split evenly over its operations."""
    return [
        row(cfg, "step", op, "call_seconds", "perf_counter", s / len(operations), "s", step)
        for step, s in enumerate(seconds)
        for op in operations
    ]


A, B = config(), config(storage="csr")
ONLY_BASE, ONLY_NEW = config(grid=5), config(grid=7)
TIMES = 1e-3 * (1 + 0.01 * np.random.default_rng(0).standard_normal(30))  # tight: 1 %
SPREAD = np.random.default_rng(1).uniform(0.5e-3, 1.5e-3, 30)  # wide: ±50 %
THREE = ("infer_states", "infer_policies", "sample_action")


def sets(new_axes: dict | None = None) -> tuple[list[dict], list[dict]]:
    """BASE and NEW rows; NEW's configurations changed by ``new_axes`` (an --axis)."""
    a, b = (cfg | (new_axes or {}) for cfg in (A, B))
    base = [
        summary(A, "total_peak_bytes", "vmhwm", 100e6),
        summary(A, "peak_bytes", "tracemalloc", 50e6),
        summary(A, "peak_bytes", "vmhwm", 0.5e6),
        summary(A, "model_bytes", "nbytes", 10e6),
        *steps(A, TIMES, THREE),
        precision(A, "action_agreement", 1.0),
        precision(A, "max_abs_qs_error", 0.0),
        summary(B, "total_peak_bytes", "vmhwm", 200e6),
        summary(B, "per_agent_bytes", "rss_anon", 20e6),
        *steps(B, SPREAD),
        precision(B, "action_agreement", 1.0),
        precision(B, "max_abs_qs_error", 1e-8),
        summary(ONLY_BASE, "total_peak_bytes", "vmhwm", 90e6),
    ]
    new = [
        summary(a, "total_peak_bytes", "vmhwm", 120e6),  # +20 %: regressed
        summary(a, "peak_bytes", "tracemalloc", 51e6),  # +2 %: below the threshold
        summary(a, "peak_bytes", "vmhwm", 0.9e6),  # +80 %, but 0.4 MB < 1 MB resolution
        summary(a, "model_bytes", "nbytes", 8e6),  # -20 %: improved
        *steps(a, TIMES * 1.3, THREE),  # significant and 30 % slower: regressed
        precision(a, "action_agreement", 1.0),
        precision(a, "max_abs_qs_error", 1e-17),  # from 0 to rounding: no change
        summary(b, "total_peak_bytes", "vmhwm", 198e6),  # -1 %
        summary(b, "per_agent_bytes", "rss_anon", 0, status="unavailable"),
        *steps(b, SPREAD[::-1] * 1.06),  # 6 % slower, within a ±50 % spread
        precision(b, "action_agreement", 0.9),  # another action: regressed
        precision(b, "max_abs_qs_error", 2e-7),  # ×20: regressed
        summary(config(grid=7) | (new_axes or {}), "total_peak_bytes", "vmhwm", 90e6),
    ]
    return base, new


DENSE, CSR = (f"lean · {s} · float64 · G=3 · 1 agent · private" for s in ("dense", "csr"))
EXPECTED = {
    (DENSE, "total_peak_bytes", "vmhwm"): "regressed",
    (DENSE, "peak_bytes", "tracemalloc"): "unchanged",
    (DENSE, "peak_bytes", "vmhwm"): "unchanged",
    (DENSE, "model_bytes", "nbytes"): "improved",
    (DENSE, "step_seconds", "perf_counter"): "regressed",
    (DENSE, "action_agreement", "reference_trace"): "unchanged",
    (DENSE, "max_abs_qs_error", "reference_trace"): "unchanged",
    (CSR, "total_peak_bytes", "vmhwm"): "unchanged",
    (CSR, "per_agent_bytes", "rss_anon"): "unmeasured",
    (CSR, "step_seconds", "perf_counter"): "unchanged",
    (CSR, "action_agreement", "reference_trace"): "regressed",
    (CSR, "max_abs_qs_error", "reference_trace"): "regressed",
    ("lean · dense · float64 · G=5 · 1 agent · private", None, None): "only in BASE",
    ("lean · dense · float64 · G=7 · 1 agent · private", None, None): "only in NEW",
}  # fmt: skip


def frame(rows: list[dict]) -> pd.DataFrame:
    return to_frame(to_table(rows))


def verdicts(result: compare.Comparison) -> dict:
    """(configuration, metric, probe) -> verdict; None for a configuration's own row."""
    table = result.table.astype(object).where(result.table.notna(), None)
    return {(r["label"], r["metric"], r["probe"]): r["verdict"] for _, r in table.iterrows()}


def judged(base_rows, new_rows, resolution=RESOLUTION, **options) -> compare.Comparison:
    base = compare.MeasurementSet("BASE", frame(base_rows), None)
    new = compare.MeasurementSet("NEW", frame(new_rows), None)
    return compare.compare(base, new, resolution=resolution, **options)


def test_every_verdict_as_expected():
    result = judged(*sets())
    assert verdicts(result) == EXPECTED
    assert result.counts() == {
        "regressed": 4, "improved": 1, "unmeasured": 1, "only in BASE": 1, "only in NEW": 1,
        "unchanged": 6,
    }  # fmt: skip
    notes = {(r.metric, r.probe): r.note for r in result.table.itertuples() if r.storage == "dense"}
    assert notes["peak_bytes", "vmhwm"] == "within the probe's resolution"
    assert notes["peak_bytes", "tracemalloc"] == "within the threshold"


def test_a_step_is_the_sum_of_its_operations():
    result = judged(*sets())
    time = result.table[(result.table.kind == "time") & (result.table.storage == "dense")]
    assert time.base.item() == pytest.approx(np.median(TIMES))
    assert time.ratio.item() == pytest.approx(1.3)
    assert time.p_value.item() < compare.SIGNIFICANCE


def test_the_time_rules_need_both_significance_and_size():
    small = [row for row in sets()[0] if row["storage"] == "dense"]
    slower = [r | {"value": r["value"] * 1.02} if r["phase"] == "step" else r for r in small]
    result = judged(small, slower)
    time = result.table[result.table.kind == "time"].iloc[0]
    assert time.p_value < compare.SIGNIFICANCE  # every NEW sample above every BASE one
    assert (time.verdict, time.note) == ("unchanged", "within the threshold")
    spread = judged(*sets()).table
    spread = spread[(spread.kind == "time") & (spread.storage == "csr")].iloc[0]
    assert spread.ratio > 1 + compare.THRESHOLD and spread.p_value >= compare.SIGNIFICANCE
    assert (spread.verdict, spread.note) == ("unchanged", "not significant (p ≥ 0.01)")


def test_without_a_calibration_there_is_no_resolution_floor():
    result = judged(*sets(), resolution=None)
    row = (DENSE, "peak_bytes", "vmhwm")
    assert verdicts(result)[row] == "regressed"  # 0.5 → 0.9 MB, +80 %


def test_threshold_moves_the_memory_verdicts():
    result = judged(*sets(), threshold=0.25)
    found = verdicts(result)
    assert found[(DENSE, "total_peak_bytes", "vmhwm")] == "unchanged"  # +20 %
    assert found[(DENSE, "step_seconds", "perf_counter")] == "regressed"  # ×1.3 > ×1.25


# The command line ------------------------------------------------------------------------
def calibration() -> pd.DataFrame:
    """Calibration rows whose resolutions are RESOLUTION's (harness.calibration.resolution)."""
    rows = []
    for probe, sizes in {
        "vmhwm": {256e3: -1.0, 1e6: 0.05, 8e6: 0.01},
        "tracemalloc": {4e3: 0.03, 1e6: 0.0},
    }.items():
        for size, error in sizes.items():
            rows.append(
                {"probe": probe, "reading": "peak", "requested_bytes": int(size),
                 "measured_bytes": size * (1 + error), "error_fraction": error, "repeats": 3,
                 "spread_bytes": 0.0, "resolution_bytes": RESOLUTION[probe]}
            )  # fmt: skip
    return pd.DataFrame(rows)


def results_folder(path: Path, rows: list[dict], calibrated: bool = True) -> Path:
    write_measurements(to_table(rows), path / "measurements.parquet")
    if calibrated:
        calibration().to_parquet(path / "calibration.parquet")
    return path


def run(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def two_sets(tmp_path) -> tuple[Path, Path]:
    base, new = sets()
    return results_folder(tmp_path / "base", base), results_folder(tmp_path / "new", new)


def test_cli_compares_and_writes_every_file(two_sets, tmp_path, capsys):
    base, new = two_sets
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "compare", str(base), str(new), "--out", str(out))
    assert code == 0
    assert "regressed 4 · improved 1 · unmeasured 1 · only in BASE 1 · only in NEW 1" in stdout
    assert "only in BASE: lean · dense · float64 · G=5 · 1 agent · private" in stdout
    assert "only in NEW: lean · dense · float64 · G=7 · 1 agent · private" in stdout
    assert "vmhwm 1 MB" in stdout and "calibration.parquet" in stdout
    assert {p.name for p in out.iterdir()} == {f"compare.{s}" for s in ("md", "html", "csv", "png")}
    table = pd.read_csv(out / "compare.csv")
    assert len(table) == len(EXPECTED)
    assert set(table.verdict) == set(EXPECTED.values())
    assert "only in NEW" in (out / "compare.md").read_text()
    assert 'class="regressed"' in (out / "compare.html").read_text()


def test_cli_fails_on_regression_only_when_asked(two_sets, tmp_path, capsys):
    base, new = two_sets
    out = ["--out", str(tmp_path / "out")]
    assert run(capsys, "compare", str(base), str(new), *out, "--fail-on-regression")[0] == 1
    assert run(capsys, "compare", str(base), str(base), *out, "--fail-on-regression")[0] == 0


def test_cli_says_when_there_is_no_resolution_floor(tmp_path, capsys):
    base, new = sets()
    base_dir = results_folder(tmp_path / "b", base, calibrated=False)
    new_dir = results_folder(tmp_path / "n", new, calibrated=False)
    code, stdout, _ = run(capsys, "compare", str(base_dir), str(new_dir), "--out", str(tmp_path))
    assert code == 0 and "no resolution floor" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "{new}"], "nowhere: no such file, folder or baseline"),
        (["{base}", "--axis", "dtype=float64,float16"], "dtype=float16: absent from"),
        (["{base}", "--axis", "colour=red,blue"], "colour: not a column of"),
        (["{base}", "--axis", "dtype"], "expects AXIS=BASE,NEW"),
        (["{base}", "{new}", "--axis", "dtype=a,b"], "give BASE only"),
        (["{base}"], "give BASE and NEW"),
        (["{base}", "{other}"], "no configuration of"),
        (["{base}", "{new}", "--out", "{base}/measurements.parquet"], "is a file"),
    ],
    ids=["no-such-set", "absent-value", "no-such-axis", "no-values", "axis-and-new",
         "one-set", "nothing-matched", "out-is-a-file"],
)  # fmt: skip
def test_cli_bad_input_is_one_line_and_status_2(two_sets, tmp_path, capsys, args, message):
    base, new = two_sets
    other = results_folder(tmp_path / "other", [summary(config(seed=9), "peak_bytes", "vmhwm", 1)])
    paths = {"base": base, "new": new, "other": other}
    args = [a.format(**paths) for a in args]
    code, stdout, stderr = run(capsys, "compare", "--out", str(tmp_path / "out"), *args)
    assert code == 2, stdout + stderr
    assert stderr.count("\n") == 1 and message in stderr
    assert stderr.startswith("memsweep compare: error: ")


@pytest.mark.parametrize(
    ("axis", "values", "label"),
    [("pymdp_version", ("1.0.0", "1.0.4"), " · float64"), ("dtype", ("float64", "float32"), "")],
)
def test_axis_compares_two_values_within_one_set(tmp_path, capsys, axis, values, label):
    base, new = sets({axis: values[1]} if axis == "dtype" else None)
    rows = [r | {axis: values[0]} for r in base] + [r | {axis: values[1]} for r in new]
    folder = results_folder(tmp_path / "set", rows)
    result = compare.compare(
        *compare.split(compare.load(str(folder)), axis, list(values)), axis, resolution=RESOLUTION
    )
    expected = {(k[0].replace(" · float64", label), *k[1:]): v for k, v in EXPECTED.items()}
    assert verdicts(result) == expected  # the compared axis is in no label
    code, stdout, _ = run(
        capsys, "compare", str(folder), "--axis", f"{axis}={','.join(values)}",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 0 and f"BASE: {folder} {axis}={values[0]}" in stdout


# Baselines -------------------------------------------------------------------------------
def test_baseline_save_list_refuse_and_compare(two_sets, tmp_path, capsys):
    base, new = two_sets
    code, stdout, _ = run(capsys, "baseline", "save", "v1", "--results", str(base))
    saved = base / "baselines" / "v1"
    assert code == 0 and str(saved) in stdout
    assert {p.name for p in saved.iterdir()} == {
        "measurements.parquet", "calibration.parquet", "provenance.json"
    }  # fmt: skip
    described = json.loads((saved / "provenance.json").read_text())
    assert described["name"] == "v1"
    assert described["pymdp_version"] == ["1.0.4"] and described["configurations"] == 3

    code, _, stderr = run(capsys, "baseline", "save", "v1", "--results", str(base))
    assert code == 2 and "exists" in stderr and "--force" in stderr
    assert run(capsys, "baseline", "save", "v1", "--results", str(base), "--force")[0] == 0
    code, _, stderr = run(capsys, "baseline", "save", "../up", "--results", str(base))
    assert code == 2 and "baseline name" in stderr

    code, stdout, _ = run(capsys, "baseline", "list", "--results", str(base))
    assert code == 0 and stdout.startswith("v1: 3 configurations, PyMDP 1.0.4")
    assert [b["name"] for b in baselines.listed(base)] == ["v1"]

    out = ["--out", str(tmp_path / "out"), "--results", str(base)]
    code, stdout, _ = run(capsys, "compare", "v1", str(new), *out)
    assert code == 0 and "BASE: v1" in stdout and "regressed 4 · improved 1" in stdout
    assert str(saved / "calibration.parquet") in stdout  # its own calibration


def test_baseline_needs_measurements(tmp_path, capsys):
    code, _, stderr = run(capsys, "baseline", "save", "v1", "--results", str(tmp_path))
    assert code == 2 and "no such file" in stderr
    code, stdout, _ = run(capsys, "baseline", "list", "--results", str(tmp_path))
    assert code == 0 and stdout.startswith("no baselines")


# The real sweep --------------------------------------------------------------------------
REAL = ROOT / "results" / "measurements.parquet"


@pytest.mark.skipif(not REAL.is_file(), reason="no finished sweep in results/ to compare")
def test_the_real_sweep_compared_with_itself_is_unchanged():
    from memsweep.harness.calibration import resolution

    measured = compare.load(str(REAL))
    calibrated = measured.calibration
    floor = resolution(pd.read_parquet(calibrated)) if calibrated else None
    result = compare.compare(measured, measured, resolution=floor)
    counts = result.counts()
    assert counts["unchanged"] > 0
    assert {v: n for v, n in counts.items() if v not in ("unchanged", "unmeasured")} == {
        "regressed": 0, "improved": 0, "only in BASE": 0, "only in NEW": 0
    }  # fmt: skip
    # Unmeasured only where the sweep itself holds no figure (a status other than ok).
    unmeasured = result.of("unmeasured")
    assert unmeasured.base.isna().all() and unmeasured.new.isna().all()
