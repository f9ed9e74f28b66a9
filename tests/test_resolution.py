"""Probe resolution: calibration down to a page, each size in fresh processes; the
smallest size each probe measures within ±10 %; and the report marking every figure
below it (shown ``< N``, never ranked, subtracted or turned into a share)."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest

from memsweep.harness import calibration, probes
from memsweep.report import claims, detail, fixes, hotspots, prediction, queries, sections
from memsweep.report.formats import Unresolved, fmt_bytes, fmt_percent

from .test_report_units import CSR, DENSE, config, make_df, row

# Calibration in fresh processes --------------------------------------------------------


def test_each_size_and_repeat_is_measured_in_a_fresh_process(monkeypatch):
    started = []
    run = subprocess.run

    def counted(command, *args, **kwargs):
        started.append(command)
        return run(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counted)
    rows = pd.DataFrame(calibration.calibrate(sizes_kb=(4, 8_000), repeats=2))

    assert started == [[sys.executable, "-m", calibration.MODULE, str(size)]
                       for _ in range(2) for size in (4_000, 8_000_000)]  # fmt: skip
    readings = {(p, r) for p, r in zip(rows.probe, rows.reading, strict=True)}
    assert readings == {
        (probes.TRACEMALLOC, "level"), (probes.ANON, "level"), (probes.USS, "level"),
        (probes.RSS, "level"), (probes.VMHWM, "level"),
        (probes.TRACEMALLOC, "peak"), (probes.VMHWM, "peak"),
    }  # fmt: skip
    assert set(rows.requested_bytes) == {4_000, 8_000_000}
    assert (rows.repeats == 2).all()
    assert rows.error_fraction.tolist() == pytest.approx(
        ((rows.measured_bytes - rows.requested_bytes) / rows.requested_bytes).tolist()
    )
    # Every probe holds its limit from its limit's size up (here 8 MB for all of them) ...
    large = rows[rows.requested_bytes == 8_000_000]
    for probe, error in zip(large.probe, large.error_fraction, strict=True):
        assert abs(error) <= calibration.LIMITS[probe].fraction, (probe, error)
    # ... and tracemalloc, which counts every buffer exactly, never misses one: it reads
    # at least the array (numpy's bookkeeping on top), and a kept page within 10 %.
    traced = rows[rows.probe == probes.TRACEMALLOC]
    assert (traced.measured_bytes >= traced.requested_bytes).all()
    level = traced[(traced.reading == "level") & (traced.requested_bytes == 4_000)]
    assert abs(level.error_fraction.item()) <= calibration.TOLERANCE
    # The file's resolution column is resolution() of its own rows.
    written = dict(zip(rows.probe, rows.resolution_bytes, strict=True))
    assert written == calibration.resolution(rows)


def test_one_fresh_process_reads_a_kept_and_a_freed_array():
    found = calibration._fresh(8_000_000)
    values = {(probe, reading): value for probe, reading, value in found}
    # The kept array is still resident when the freed one is measured: both are seen whole.
    for probe, reading in ((probes.ANON, "level"), (probes.VMHWM, "peak"),
                           (probes.TRACEMALLOC, "peak")):  # fmt: skip
        limit = calibration.LIMITS[probe].fraction
        assert values[(probe, reading)] == pytest.approx(8e6, rel=limit), (probe, reading)


def test_a_failing_calibration_process_says_why(monkeypatch):
    monkeypatch.setattr(calibration, "MODULE", "memsweep.no_such_module")
    with pytest.raises(RuntimeError, match="(?s)calibrating 4000 bytes failed:.*No module named"):
        calibration._fresh(4_000)


# resolution() on a hand-made table ----------------------------------------------------


def cal(probe, size, error, reading="level") -> dict:
    return {"probe": probe, "reading": reading, "requested_bytes": size, "error_fraction": error}


def test_resolution_is_the_smallest_size_from_which_every_reading_is_within_10_percent():
    table = pd.DataFrame([
        # Within from 64 KB up; off at 4 KB.
        cal("a", 4_000, 0.5), cal("a", 64_000, 0.05), cal("a", 1_000_000, 0.01),
        # Within at 4 KB by chance, off at 64 KB: it does not *stay* within below 1 MB.
        cal("b", 4_000, 0.0), cal("b", 64_000, -0.9), cal("b", 1_000_000, 0.0),
        # Its level is within everywhere, its peak only from 1 MB: both must be.
        cal("c", 4_000, 0.0), cal("c", 64_000, 0.0), cal("c", 1_000_000, 0.0),
        cal("c", 4_000, -1.0, "peak"), cal("c", 64_000, -0.2, "peak"),
        cal("c", 1_000_000, -0.04, "peak"),
        # Off (read nothing) at the largest size: no resolution at any calibrated size.
        cal("d", 4_000, 0.0), cal("d", 1_000_000, float("nan")),
        # Exactly ±10 % is within; every size within: the smallest.
        cal("e", 4_000, -0.10), cal("e", 64_000, 0.10), cal("e", 1_000_000, 0.0),
    ])  # fmt: skip
    assert calibration.resolution(table) == {
        "a": 64_000, "b": 1_000_000, "c": 1_000_000, "d": math.inf, "e": 4_000,
    }  # fmt: skip
    # Dicts in any order say the same as the DataFrame.
    assert calibration.resolution(reversed(table.to_dict("records"))) == calibration.resolution(
        table
    )
    assert calibration.resolution(pd.DataFrame({"probe": []})) == {}


def test_verdicts_judge_from_the_limits_size_and_print_the_resolution():
    table = [
        cal(probes.TRACEMALLOC, 4_000, 0.086, "peak"),  # below 1 MB: outside the limit's range
        cal(probes.TRACEMALLOC, 1_000_000, 0.0003),
        cal(probes.VMHWM, 1_000_000, -0.12, "peak"),  # vmhwm's limit holds from 8 MB
        cal(probes.VMHWM, 8_000_000, -0.02, "peak"),
        cal(probes.ANON, 64_000, -1.0),  # no size at or above 1 MB: nothing to judge
    ]
    lines = [verdict.line() for verdict in calibration.verdicts(table)]
    assert lines == [
        "PASS tracemalloc: worst +0.03 % (at 1 MB), limit ±1 % from 1 MB; resolution 4 KB (±10 %)",
        "PASS vmhwm: worst -2.00 % (at 8 MB), limit ±5 % from 8 MB; resolution 8 MB (±10 %)",
        "FAIL rss_anon: no calibrated size to judge, limit ±5 % from 1 MB; "
        "resolution none of the calibrated sizes (±10 %)",
    ]


def test_calibrate_prints_the_resolution_beside_each_verdict(tmp_path):
    from .conftest import memsweep

    out = tmp_path / "calibration.parquet"
    result = memsweep(
        "calibrate", "--out", str(out), "--sizes-kb", "16", "1000", "8000", "--repeats", "1"
    )
    table = pd.read_parquet(out)
    resolution = calibration.resolution(table)
    verdicts = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert [line.split()[1].rstrip(":") for line in verdicts] == list(calibration.LIMITS)
    for line in verdicts:
        probe = line.split()[1].rstrip(":")
        assert line.endswith(f"; resolution {calibration.size_text(resolution[probe])} (±10 %)")
    assert dict(zip(table.probe, table.resolution_bytes, strict=True)) == resolution


# The report marks what is below resolution ---------------------------------------------

# vmhwm resolves 1 MB and up, rss_anon and psutil_uss 256 KB and up.
CALIBRATION = pd.DataFrame([
    cal(probes.VMHWM, 256_000, -0.6, "peak"), cal(probes.VMHWM, 1_000_000, -0.05, "peak"),
    cal(probes.ANON, 256_000, 0.01), cal(probes.ANON, 1_000_000, 0.0),
    cal(probes.USS, 256_000, 0.01), cal(probes.USS, 1_000_000, 0.0),
])  # fmt: skip
RESOLUTION = calibration.resolution(CALIBRATION)


def temporaries() -> pd.DataFrame:
    """A per-call temporary that csr's vmhwm reads as 0, and a model whose vmhwm figures
    are all below resolution while rss_anon measures it well."""
    return make_df(
        row(DENSE, "step", "infer_states", "call_peak_bytes", probes.VMHWM, 5e6),
        row(CSR, "step", "infer_states", "call_peak_bytes", probes.VMHWM, 0.0),
        row(DENSE, "build", "model", "growth_bytes", probes.ANON, 30e6),
        row(CSR, "build", "model", "growth_bytes", probes.ANON, 5e6),
        row(DENSE, "build", "model", "call_peak_bytes", probes.VMHWM, 100e3),
        row(CSR, "build", "model", "call_peak_bytes", probes.VMHWM, 50e3),
        # Not bytes: a share is never held against a resolution in bytes.
        row(DENSE, "cleanup", "drop_agents", "released_fraction", probes.ANON, 0.9, unit="1"),
    )


def test_the_selector_marks_each_figure_against_its_probes_resolution():
    assert RESOLUTION == {probes.VMHWM: 1e6, probes.ANON: 256e3, probes.USS: 256e3}
    frame = temporaries()
    sel = queries.selector("step", "infer_states", "call_peak_bytes", probes.VMHWM)
    table = queries.per_config(frame, sel, RESOLUTION).set_index("config_id")
    assert table.resolved.to_dict() == {DENSE["config_id"]: True, CSR["config_id"]: False}
    assert (table.resolution == 1e6).all()
    assert queries.figure(table.loc[DENSE["config_id"]]) == 5e6
    below = queries.figure(table.loc[CSR["config_id"]])
    assert below == Unresolved(1e6) and fmt_bytes(below) == "< 1 MB"
    with pytest.raises(TypeError):  # never used as a number, let alone as 0
        below - 0.0
    share = queries.rows(frame, queries.selector("cleanup", None, "released_fraction", None),
                         RESOLUTION)  # fmt: skip
    assert share.resolved.tolist() == [True] and share.resolution.isna().all()
    # Without a calibration nothing is marked.
    assert queries.per_config(frame, sel).resolved.all()


def test_a_saving_is_never_computed_from_a_figure_below_resolution():
    frame = temporaries()
    # Unmarked, csr's 0 is read as "csr saves 100 %": the finding this marking removes.
    unmarked = next(h for h in hotspots.rank(frame) if h.consumer.key == "call_temporaries")
    assert unmarked.fix.saving[probes.VMHWM].fraction == 1.0

    ranked = hotspots.rank(frame, resolution=RESOLUTION)
    temporary = next(h for h in ranked if h.consumer.key == "call_temporaries")
    (to_csr,) = temporary.fixes
    saving = to_csr.saving[probes.VMHWM]
    assert (saving.base, saving.variant) == (5e6, Unresolved(1e6))
    assert saving.bytes is None and saving.fraction is None and saving.unresolved
    assert saving.note == "variant below vmhwm's resolution (< 1 MB)"
    assert temporary.fix is None
    shown = detail.variants_table(temporary).shown().iloc[0]
    assert shown["saving [vmhwm]"] == shown["saving % [vmhwm]"] == "below resolution"
    assert detail._saving(saving) == "variant below vmhwm's resolution (< 1 MB)"


def test_figures_below_resolution_rank_nothing_and_show_as_below():
    frame = temporaries()
    ranked = hotspots.rank(frame, resolution=RESOLUTION)
    assert [(h.consumer.key, h.ranks) for h in ranked] == [
        ("call_temporaries", {probes.VMHWM: 1}),
        ("model_built", {probes.ANON: 1}),  # unmarked, vmhwm ranks its 100 KB second
    ]
    model = ranked[1]
    assert fmt_bytes(queries.figure(model.worst[probes.VMHWM])) == "< 1 MB"
    # Its fix's vmhwm saving is not computed; rss_anon's is.
    (to_csr,) = model.fixes
    assert to_csr.saving[probes.VMHWM].bytes is None
    assert to_csr.saving[probes.ANON].fraction == pytest.approx(25 / 30)

    context = sections.Context(
        frame=frame, plan=pd.DataFrame(), calibration=CALIBRATION, ranked=ranked,
        prediction=pd.DataFrame(), figures={},
    )  # fmt: skip
    assert context.resolution == RESOLUTION
    (table,) = [c for kind, c in sections.ranking(context).blocks if kind == "table"]
    worst = table.shown().set_index("hotspot")["worst [vmhwm]"]
    assert worst[model.what] == "< 1 MB"
    assert worst[ranked[0].what] == "5 MB"
    items = dict(detail.hotspot_section(model, 2, frame).blocks[0][1])
    measured = items["Measured (worst configuration per probe)"]
    assert "vmhwm: < 1 MB (below its resolution) in lean-dense-float64-3-1-private" in measured
    assert "rss_anon: 30 MB in" in measured


def test_a_sum_is_resolved_when_its_unresolved_parts_cannot_move_it_by_10_percent():
    def parts(*values_and_resolved):
        values, resolved = zip(*values_and_resolved, strict=True)
        return pd.DataFrame(
            {"value": values, "resolved": resolved, "resolution": [1e6] * len(values)}
        )

    # A part that reads 0 may be up to 1 MB: within 10 % of 100 MB, not of 5 MB.
    assert queries.summed(parts((100e6, True), (0.0, False))) == pytest.approx((100e6, 10e6))
    value, resolution = queries.summed(parts((5e6, True), (0.0, False)))
    assert abs(value) < resolution  # shown as "< 10 MB", never as 5 MB
    assert fmt_bytes(Unresolved(resolution)) == "< 10 MB"
    assert math.isnan(queries.summed(parts((5e6, True), (1e6, True)))[1])


def test_no_prediction_error_is_computed_from_a_figure_below_resolution():
    big, small = config(grid=5), config(grid=6)
    frame = make_df(
        row(big, "import", "load", "resident_bytes", probes.USS, 100e6),
        row(big, "summary", "all", "peak_bytes", probes.VMHWM, 0.0),
        row(big, "summary", "all", "total_peak_bytes", probes.VMHWM, 100e6),
        row(small, "import", "load", "resident_bytes", probes.USS, 5e6),
        row(small, "summary", "all", "peak_bytes", probes.VMHWM, 0.0),
        row(small, "summary", "all", "total_peak_bytes", probes.VMHWM, 0.5e6),
    )
    plan = queries.configurations(frame).assign(status="run", reason=None, predicted_mb=50.0)
    compared = prediction.prediction_table(frame, plan, RESOLUTION).set_index("config_id")
    # No error is computed from a figure below resolution: the 0 MB peak nor 5 MB total.
    assert compared.error.isna().to_dict() == {big["config_id"]: False, small["config_id"]: True}
    assert compared.above_import_error.isna().all()
    assert fmt_percent(compared.error[big["config_id"]]) == "-50.0 %"


def test_a_variant_summed_over_operations_is_marked_as_its_sum():
    numpy, jax = config(backend="pymdp-numpy"), config(backend="pymdp-jax")
    frame = make_df(
        row(jax, "step", "step", "call_peak_bytes", probes.VMHWM, 30e6),
        row(numpy, "step", "infer_policies", "call_peak_bytes", probes.VMHWM, 20e6),
        row(numpy, "step", "sample_action", "call_peak_bytes", probes.VMHWM, 0.0),
    )
    tables = queries.Tables(frame, RESOLUTION)
    sel = queries.selector("step", "step", "call_peak_bytes", probes.VMHWM)
    value, note = fixes._variant_value(tables, sel, numpy["config_id"])
    # sample_action's 0 may be up to 1 MB: within 10 % of 20 MB, so the sum stands.
    assert value == 20e6 and note == "variant: sum over its infer_policies, sample_action"
    smaller = frame.assign(value=frame.value.where(frame.operation != "infer_policies", 5e6))
    value, _ = fixes._variant_value(queries.Tables(smaller, RESOLUTION), sel, numpy["config_id"])
    assert value == Unresolved(10e6)


def test_a_claimed_saving_is_not_judged_on_a_figure_below_resolution():
    claim = {
        "id": "float32_saves_half", "text": "float32 halves the peak", "value": 0.5,
        "unit": "fraction",
        "compare": [{
            "kind": "saving", "as": "fraction",
            "select": {"phase": "summary", "operation": "all", "metric": "peak_bytes"},
            "probes": [probes.VMHWM], "change": {"dtype": ["float64", "float32"]},
            "where": {"backend": "pymdp-numpy"}, "rule": {"absolute": 0.05},
        }],
    }  # fmt: skip
    f64, f32 = config(backend="pymdp-numpy"), config(backend="pymdp-numpy", dtype="float32")
    frame = make_df(
        row(f64, "summary", "all", "peak_bytes", probes.VMHWM, 4e6),
        row(f32, "summary", "all", "peak_bytes", probes.VMHWM, 0.0),
    )
    (unmarked,) = claims.evaluate(frame, [claim])
    assert unmarked.ours == 1.0  # "float32 saves 100 %": a 0 taken at its word
    (marked,) = claims.evaluate(frame, [claim], resolution=RESOLUTION)
    assert marked.ours is None and marked.verdict == claims.NOT_COMPARABLE
    assert marked.why == "the dtype=float32 twins' figures are below vmhwm's resolution (< 1 MB)"
