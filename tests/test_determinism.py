"""Same settings, same numbers: the reference trace bit for bit, and a job's exact/traced bytes."""

import numpy as np
import pandas as pd
import pytest

from memsweep.harness import probes, supervisor
from memsweep.plan.jobs import Job
from memsweep.results import schema

from .conftest import memsweep

GRID = 8


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Two reference traces of the same world, each made in its own fresh process."""
    folder = tmp_path_factory.mktemp("references")
    job = Job("pymdp-numpy", "dense", "float64", GRID, 1, "shared", 2, steps=12, seed=7)
    paths = [folder / "first.npz", folder / "second.npz"]
    for path in paths:
        assert supervisor.make_reference_file(job, path).ok
    return paths


def test_the_reference_trace_is_bit_identical_across_processes(references):
    first, second = (np.load(path) for path in references)
    with first, second:
        assert sorted(first.files) == sorted(second.files)
        assert {"observations", "actions", "qs", "q_pi"} <= set(first.files)
        for key in first.files:
            a, b = first[key], second[key]
            assert a.dtype == b.dtype and a.shape == b.shape, key
            assert a.tobytes() == b.tobytes(), key
        assert first["qs"].shape == (12, GRID * GRID)
        assert first["q_pi"].shape == (12, 25)  # 5 actions, planning depth 2
        assert np.isfinite(first["qs"]).all()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, references):
    """The same small job measured twice, each in fresh processes."""
    folder = tmp_path_factory.mktemp("runs")
    frames = []
    for name in ("one", "two"):
        out = folder / f"{name}.parquet"
        memsweep(
            "measure",
            "--backend",
            "pymdp-numpy",
            "--storage",
            "dense",
            "--dtype",
            "float64",
            "--grid",
            str(GRID),
            "--agents",
            "2",
            "--sharing",
            "private",
            "--policy-len",
            "2",
            "--steps",
            "5",
            "--repeats",
            "2",
            "--set",
            "seed=7",
            "--reference",
            str(references[0]),
            "--out",
            str(out),
        )
        frames.append(schema.read_measurements(out).to_pandas())
    return frames


def rows(frame: pd.DataFrame, phase: str, metric: str, probe: str) -> pd.Series:
    selected = frame[(frame.phase == phase) & (frame.metric == metric) & (frame.probe == probe)]
    return selected.set_index("operation").value.sort_index()


def test_model_bytes_are_identical(two_runs):
    one, two = two_runs
    model_one = rows(one, "model", "bytes", probes.EXACT)
    assert list(model_one.index) == ["A", "B", "C", "D"]
    pd.testing.assert_series_equal(model_one, rows(two, "model", "bytes", probes.EXACT))
    assert model_one["A"] == (GRID * GRID) ** 2 * 8


def test_traced_bytes_per_agent_agree_within_one_percent(two_runs):
    one, two = two_runs
    a = rows(one, "build", "per_agent_bytes", probes.TRACEMALLOC)["agents"]
    b = rows(two, "build", "per_agent_bytes", probes.TRACEMALLOC)["agents"]
    assert a > 0
    assert abs(a - b) <= 0.01 * max(a, b), (a, b)


def test_the_runs_compute_the_same_beliefs(two_runs):
    one, two = two_runs
    scores = rows(one, "precision", "max_abs_qs_error", "reference_trace")
    assert (scores == 0.0).all()
    for metric in ("max_abs_qs_error", "max_abs_q_pi_error", "max_kl_qs", "action_agreement"):
        assert (
            rows(one, "precision", metric, "reference_trace").item()
            == rows(two, "precision", metric, "reference_trace").item()
        ), metric
    assert rows(one, "precision", "action_agreement", "reference_trace").item() == 1.0
    assert one.config_id.iloc[0] == two.config_id.iloc[0]
    # Same rows, in the same order: only the measured values may differ.
    keys = ["phase", "operation", "metric", "probe", "repeat", "step"]
    pd.testing.assert_frame_equal(one[keys], two[keys])
