"""The memory predictor fitted to measurements: the fit, leave-one-grid-out, the plan's
use of it (and its fallback), and ``memsweep predict``.

The measurements here are synthetic tidy tables whose consumers follow known laws of
the sizes the predictor fits against (``memsweep.plan.predict.sizes``), so every
expectation is exact; the real Snakemake's use of it is in test_predictor_workflow.py.
"""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest

from memsweep.cli import main
from memsweep.harness import probes
from memsweep.plan import fitted, forecast, predict, sweep
from memsweep.plan.jobs import Job
from memsweep.report import predictor
from memsweep.workflow import Pipeline

from .conftest import memsweep, tiny_config

# The laws of the synthetic measurements: consumer -> (a, b), MB, linear in its size.
LAWS = {"fixed": (150.0, 0.0), "model": (0.5, 1.2), "agents": (2.0, 1.1), "calls": (1.0, 0.5)}
GRIDS = (4, 6, 8)


def lean_jobs(grids=GRIDS) -> list[Job]:
    return [
        Job("lean", storage, "float64", grid, agents, sharing, 1)
        for storage in ("dense", "csr")
        for grid in grids
        for agents in (1, 3)
        for sharing in ("private", "shared")
    ]


def law(name: str, job: Job) -> float:
    a, b = LAWS[name]
    return a + b * predict.sizes(job)[name]


def tidy(jobs: list[Job], whole: bool = True, scale: dict[int, float] | None = None):
    """The vmhwm rows of ``jobs`` measured exactly by LAWS (``whole`` False: the format
    without the baseline's rows); ``scale``: grid -> factor on its total peak only."""
    rows = []
    for job in jobs:
        model, agents, calls = (law(n, job) for n in ("model", "agents", "calls"))
        above = model + agents + calls
        values = {
            ("build", "model", "call_peak_bytes"): model,
            ("build", "agents", "call_peak_bytes"): agents,
            ("summary", "all", "peak_bytes"): above,
        }
        if whole:
            fixed = law("fixed", job)
            values[("summary", "all", "baseline_bytes")] = fixed
            total = (fixed + above) * (scale or {}).get(job.grid, 1.0)
            values[("summary", "all", "total_peak_bytes")] = total
        for (phase, operation, metric), mb in values.items():
            rows.append(
                {**job.columns(), "phase": phase, "operation": operation, "metric": metric,
                 "probe": probes.VMHWM, "value": mb * 1e6, "unit": "B", "status": "ok"}
            )  # fmt: skip
    return pd.DataFrame(rows)


def write_predictor(path, frame) -> fitted.Predictor:
    path.write_text(json.dumps(predictor.predictor(frame, {"lean": "abc123"}), sort_keys=True))
    return fitted.load(path)


# The fit ---------------------------------------------------------------------------------
def test_fit_recovers_known_a_b_k():
    x = np.logspace(-2, 2, 12)
    found = predictor.fit(x, 3.0 + 2.0 * x**0.75)
    assert found["form"] == "power"
    assert (found["a"], found["b"], found["k"]) == pytest.approx((3.0, 2.0, 0.75), rel=1e-6)
    # With scatter, the 95 % interval holds the law, and its half-width grows off the data.
    rng = np.random.default_rng(0)
    noisy = predictor.fit(x, 3.0 + 2.0 * x**0.75 + rng.normal(0, 0.5, x.size))
    curve = fitted.Fit.from_dict(noisy)
    for at in (0.1, 10.0, 100.0):
        part = curve.part(at)
        assert part.low < 3.0 + 2.0 * at**0.75 < part.high
    assert (
        curve.part(1000.0).high - curve.part(1000.0).low
        > curve.part(10.0).high - curve.part(10.0).low
    )
    assert curve.extrapolates(1000.0) and not curve.extrapolates(10.0)


def test_fit_takes_the_form_the_points_can_tell():
    linear = predictor.fit([1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 9.0, 9.0])  # two distinct x
    assert linear["form"] == "linear" and linear["k"] == 1.0
    assert (linear["a"], linear["b"]) == pytest.approx((3.0, 2.0))
    constant = predictor.fit([0.0, 0.0, 0.0], [10.0, 12.0, 14.0])  # one: the mean
    assert constant["form"] == "constant" and (constant["a"], constant["b"]) == (12.0, 0.0)
    assert constant["covariance"][0][0] == pytest.approx(4.0 / 3)  # the mean's variance
    assert predictor.fit([1.0], [2.0]) is None


# Leave one grid out ----------------------------------------------------------------------
def test_consumers_sum_to_the_whole_process_peak():
    table = predictor.consumer_table(tidy(lean_jobs()))
    assert predictor.whole_process(table)
    parts = table[[f"y_{n}" for n in fitted.CONSUMERS]].sum(axis=1)
    assert parts.to_numpy() == pytest.approx(table.target_mb.to_numpy())


def test_leave_one_grid_out_on_exact_laws_is_exact():
    table = predictor.consumer_table(tidy(lean_jobs()))
    errors = predictor.leave_one_grid_out(table)
    assert sorted(errors.held_out.unique()) == list(GRIDS) and len(errors) == len(table)
    assert errors.error.to_numpy() == pytest.approx(0.0, abs=1e-6)


def test_leave_one_grid_out_errors_and_summary():
    # Grid 6's peaks measured 0.8× and grid 8's 1.25× the laws: the fits (of the
    # consumers, which follow the laws) predict +25 % and −20 % there, 0 on grid 4.
    frame = tidy(lean_jobs(), scale={6: 0.8, 8: 1.25})
    errors = predictor.leave_one_grid_out(predictor.consumer_table(frame))
    by_grid = errors.groupby("held_out").error
    assert by_grid.min().to_numpy() == pytest.approx([0.0, 0.25, -0.2], abs=1e-6)
    assert by_grid.max().to_numpy() == pytest.approx([0.0, 0.25, -0.2], abs=1e-6)
    [row] = predictor.logo_summary(errors, whole=True).to_dict("records")
    assert row["backend"] == "lean" and row["grids"] == 3 and row["jobs"] == len(errors)
    assert row["median_abs_error"] == pytest.approx(0.2)
    assert row["worst_under_prediction"] == pytest.approx(-0.2)
    assert row["target"] == "whole process"


def test_old_format_predicts_above_the_baseline_only():
    frame = tidy(lean_jobs(), whole=False)
    table = predictor.consumer_table(frame)
    assert not predictor.whole_process(table)
    errors = predictor.leave_one_grid_out(table)
    assert errors.error.to_numpy() == pytest.approx(0.0, abs=1e-6)
    data = predictor.predictor(frame)
    assert not data["whole_process"] and "fixed" not in data["backends"]["lean"]["fits"]
    assert data["leave_one_grid_out"][0]["target"] == "above the baseline"


# The plan ----------------------------------------------------------------------------------
def config_for(backends=("lean", "pymdp-numpy"), max_job_mb=4000, grids=(5, 30)) -> dict:
    config = tiny_config()
    config["sweep"].update(backend=list(backends), grid=list(grids), agents=[2])
    config["budget"]["max_job_mb"] = max_job_mb
    return config


def test_plan_uses_the_fit_where_it_covers_the_backend(tmp_path):
    fit = write_predictor(tmp_path / "predictor.json", tidy(lean_jobs()))
    planned = sweep.plan(config_for(), fit)
    for p in planned:
        if p.job.backend == "lean":
            expected = sum(law(name, p.job) for name in fitted.CONSUMERS)  # exact laws
            assert p.predicted_by == predict.FITTED
            assert p.predicted_mb == pytest.approx(expected, abs=0.05)  # rounded to 0.1
        else:  # no pymdp-numpy job measured: the analytic formula
            assert p.predicted_by == predict.ANALYTIC
            assert p.predicted_mb == round(predict.predict_mb(p.job), 1)
    table = sweep.plan_table(planned)
    assert set(table.predicted_by) == {"fit", "analytic"}
    assert "predicted by: analytic: " in sweep.summary(planned)


def test_a_fit_moves_jobs_across_the_budget(tmp_path):
    fit = write_predictor(tmp_path / "predictor.json", tidy(lean_jobs()))
    # The analytic formula puts lean at ~120 MB, the laws at 150 MB and more.
    config = config_for(("lean",), max_job_mb=149, grids=(5,))
    assert all(p.status == sweep.RUN for p in sweep.plan(config))
    with pytest.raises(sweep.ConfigError, match="below every runnable job"):
        sweep.plan(config, fit)


def test_no_predictor_file_means_the_analytic_formula(tmp_path, capsys):
    assert predict.load_predictor(tmp_path / "none.json") is None
    planned = sweep.plan(config_for())
    assert {p.predicted_by for p in planned} == {predict.ANALYTIC}
    assert all(p.predicted_mb == round(predict.predict_mb(p.job), 1) for p in planned)
    # A file this code cannot read is set aside, saying so, not a failed parse.
    (tmp_path / "bad.json").write_text('{"format": 99}')
    assert predict.load_predictor(tmp_path / "bad.json") is None
    assert "ignoring the predictor" in capsys.readouterr().err
    # The old format (no fixed cost) covers no backend.
    old = write_predictor(tmp_path / "old.json", tidy(lean_jobs(), whole=False))
    assert not old.covers("lean")
    assert {p.predicted_by for p in sweep.plan(config_for(), old)} == {predict.ANALYTIC}


def test_the_workflow_plans_with_the_predictor_it_is_given(tmp_path):
    path = tmp_path / "predictor.json"
    without = Pipeline(copy.deepcopy(config_for()), predictor=path)
    write_predictor(path, tidy(lean_jobs()))
    with_fit = Pipeline(copy.deepcopy(config_for()), predictor=path)
    by = {p.path: p.predicted_by for p in with_fit.runnable.values()}
    assert set(by.values()) == {"fit", "analytic"}
    assert {p.predicted_by for p in without.runnable.values()} == {"analytic"}
    # Same statuses: the plan rule's param is the same, so it is not redone.
    assert without.plan_statuses() == with_fit.plan_statuses()
    assert json.loads(with_fit.code_digests()).keys() == {"lean", "pymdp-numpy"}


# memsweep predict ---------------------------------------------------------------------------
AXES = ["--backend", "lean", "--storage", "dense", "--dtype", "float64", "--sharing", "private",
        "--policy-len", "1"]  # fmt: skip


def run_predict(capsys, *args) -> tuple[int, str, str]:
    status = main(["predict", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_predict_prints_the_parts_and_their_intervals(tmp_path, capsys):
    fit = write_predictor(tmp_path / "p.json", tidy(lean_jobs()))
    args = [*AXES, "--grid", "100", "--agents", "1000", "--predictor", str(tmp_path / "p.json")]
    status, out, _ = run_predict(capsys, *args)
    assert status == 0
    job = Job("lean", "dense", "float64", 100, 1000, "private", 1)
    parts = fit.parts("lean", predict.sizes(job))
    for name, part in parts.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        assert f"{part.mb:.1f}" in line and f"[{part.low:.1f}, {part.high:.1f}]" in line
    total = fitted.total(parts)
    assert re.search(rf"peak .* {total.mb:.1f}  \[{total.low:.1f}, {total.high:.1f}\]", out)
    assert total.mb == pytest.approx(sum(law(n, job) for n in fitted.CONSUMERS), rel=1e-6)
    assert "extrapolated" in out and "code abc123" in out


def test_predict_fit_in_finds_the_largest_grid_and_agent_count(tmp_path, capsys):
    fit = write_predictor(tmp_path / "p.json", tidy(lean_jobs()))
    path = str(tmp_path / "p.json")
    status, out, _ = run_predict(
        capsys, *AXES, "--grid", "20", "--agents", "10", "--predictor", path, "--fit-in", "2GB"
    )
    assert status == 0
    found = dict(re.findall(r"largest (grid|agents) with [^:]+: (\d+) by the predicted", out))
    grid, agents = int(found["grid"]), int(found["agents"])
    base = Job("lean", "dense", "float64", 20, 10, "private", 1)

    def peak(**change):
        job = Job(**{**base.to_dict(), **change})
        return fit.peak_mb("lean", predict.sizes(job))

    assert peak(grid=grid) <= 2000 < peak(grid=grid + 1)
    assert peak(agents=agents) <= 2000 < peak(agents=agents + 1)
    assert "by the interval's upper end" in out


def test_predict_without_a_predictor_uses_the_formula(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no results/model/predictor.json here
    status, out, _ = run_predict(capsys, *AXES, "--grid", "10", "--agents", "2", "--fit-in", "1GB")
    assert status == 0
    job = Job("lean", "dense", "float64", 10, 2, "private", 1)
    assert "analytic formula (no predictor at results/model/predictor.json" in out
    assert f"{predict.predict_mb(job):.1f} MB" in out
    largest = int(re.search(r"largest grid with 2 agents: (\d+)", out).group(1))
    assert predict.predict_mb(Job(**{**job.to_dict(), "grid": largest})) <= 1000
    assert predict.predict_mb(Job(**{**job.to_dict(), "grid": largest + 1})) > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "10", "--agents", "2", "--fit-in", "16"], "expected a size with its unit"),
        (["--agents", "2"], "missing --grid"),
        (["--grid", "10", "--agents", "2", "--predictor", "none.json"], "no such file"),
        (["--grid", "1", "--agents", "2"], "must be at least 2, got 1"),
        (["--grid", "4", "--agents", "2", "--backend", "pymdp-numpy", "--storage", "csr"],
         "unsupported configuration"),
    ],
)  # fmt: skip
def test_predict_mistakes_are_one_line_and_status_2(tmp_path, args, message):
    result = memsweep("predict", *AXES, *args, check=False, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sizes_parse_in_decimal_and_binary_units():
    assert forecast.parse_size("16GB") == 16_000
    assert forecast.parse_size("16 GB") == 16_000
    assert forecast.parse_size("500MB") == 500
    assert forecast.parse_size("8GiB") == pytest.approx(8 * 1024**3 / 1e6)
    with pytest.raises(ValueError, match="16GB"):
        forecast.parse_size("lots")


def test_what_fits_is_the_predictors_answer_at_the_base_configuration(tmp_path):
    """The report's 1/8/64 GB table asks the predictor fitted to the sweep the same
    question as `memsweep predict --fit-in`, from the backend's base configuration (the
    largest grid and agent count; of the four there, each two changes from the others,
    the largest footprint: dense and private)."""
    from memsweep.report import capacity
    from memsweep.results.schema import COLUMNS, to_frame

    frame = to_frame(tidy(lean_jobs()).reindex(columns=COLUMNS))
    table = capacity.capacity(frame)
    assert list(table.memory) == ["1 GB", "8 GB", "64 GB"] and set(table.backend) == {"lean"}
    base = Job("lean", "dense", "float64", max(GRIDS), 3, "private", 1)
    assert set(table.base) == {forecast.describe_job(base)}
    model = write_predictor(tmp_path / "p.json", frame)
    for _, row in table.iterrows():
        limit = float(row.memory.split()[0]) * 1000
        for upper, name in ((False, "fit"), (True, "upper end")):
            agents = forecast.largest(base, "agents", limit, forecast.peak_of(model, upper))
            grid = forecast.largest(base, "grid", limit, forecast.peak_of(model, upper))
            assert row[f"agents at G={base.grid} ({name})"] == capacity._searched("agents", agents)
            assert row[f"grid at 3 agents ({name})"] == capacity._searched("grid", grid)
