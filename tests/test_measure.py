"""The real ``memsweep measure`` command end to end (each run starts fresh processes).

The runs are shared between tests through module-scoped fixtures: one default run
(which also computes its own reference), one unsupported request, and a shared/private
pair that replays one reference made beforehand.
"""

import pandas as pd
import pytest

from memsweep.cli import build_parser
from memsweep.harness import probes, supervisor
from memsweep.plan.jobs import Job
from memsweep.results import schema

from .conftest import memsweep

GRID = 20
A_BYTES = (GRID * GRID) ** 2 * 8  # dense float64 N×N
B_BYTES = (GRID * GRID) ** 2 * 5 * 8  # PyMDP's stacked (N, N, 5) B
EXPECTED_PHASES = {
    "import",
    "build",
    "model",
    "compile",
    "step",
    "growth",
    "gc",
    "precision",
    "cleanup",
    "summary",
}
AXES = ["--backend", "pymdp-numpy", "--storage", "dense", "--dtype", "float64"]


def value(frame: pd.DataFrame, phase: str, operation: str, metric: str, probe: str) -> float:
    rows = frame[
        (frame.phase == phase)
        & (frame.operation == operation)
        & (frame.metric == metric)
        & (frame.probe == probe)
    ]
    assert len(rows) == 1, (phase, operation, metric, probe, len(rows))
    return float(rows.value.iloc[0])


@pytest.fixture(scope="module")
def private_run(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("private2") / "m.parquet"
    memsweep(
        "measure",
        *AXES,
        "--grid",
        str(GRID),
        "--agents",
        "2",
        "--sharing",
        "private",
        "--policy-len",
        "1",
        "--out",
        str(out),
    )
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    return schema.read_frame(out)


def test_model_rows_give_exact_bytes(private_run):
    assert value(private_run, "model", "A", "bytes", probes.EXACT) == A_BYTES == 1_280_000
    assert value(private_run, "model", "B", "bytes", probes.EXACT) == B_BYTES == 6_400_000
    assert value(private_run, "model", "C", "bytes", probes.EXACT) == GRID * GRID * 8
    model_bytes = value(private_run, "summary", "all", "model_bytes", probes.EXACT)
    assert model_bytes == A_BYTES + B_BYTES + 2 * GRID * GRID * 8


def test_summary_rows_are_present_and_positive(private_run):
    summary = private_run[private_run.phase == "summary"]
    assert set(summary.metric) == set(schema.SUMMARY_METRICS)
    ok = summary[summary.status == "ok"]
    assert set(ok.metric) == set(schema.SUMMARY_METRICS)
    assert (ok.value > 0).all(), ok[["metric", "probe", "value"]]
    # By value: each private agent holds a copy of A and B, and the process held the
    # model and both copies at once.
    model = A_BYTES + B_BYTES
    assert value(private_run, "summary", "all", "per_agent_bytes", probes.TRACEMALLOC) >= model
    assert value(private_run, "summary", "all", "peak_bytes", probes.TRACEMALLOC) >= 3 * model
    # Both peak probes are reported (the kernel's may be unavailable, then it says why).
    peaks = summary[summary.metric == "peak_bytes"]
    assert set(peaks.probe) == {probes.VMHWM, probes.TRACEMALLOC}
    assert peaks[peaks.status != "ok"].reason.notna().all()
    # The whole process's resident footprint: the baseline plus the peak above it, where
    # the baseline holds at least the pages the import added.
    if probes.KernelPeak().available:
        baseline = value(private_run, "summary", "all", "baseline_bytes", probes.VMHWM)
        total = value(private_run, "summary", "all", "total_peak_bytes", probes.VMHWM)
        above = value(private_run, "summary", "all", "peak_bytes", probes.VMHWM)
        assert total == pytest.approx(baseline + above, abs=4096)
        assert total > baseline >= value(private_run, "import", "load", "anon_bytes", probes.ANON)
        # The supervisor's lifetime peak holds the configuration's peak and the work after
        # it (the traced rebuild of the model and both private copies for the sites).
        lifetime = value(private_run, "summary", "all", "job_peak_bytes", probes.Supervisor.name)
        assert lifetime >= total


def test_every_row_names_its_probe_unit_and_status(private_run):
    assert private_run.probe.notna().all() and (private_run.probe.str.len() > 0).all()
    assert set(private_run.unit) <= set(schema.UNITS)
    assert set(private_run.status) <= {"ok", "unavailable"}
    not_ok = private_run[private_run.status != "ok"]
    # Every row is ok, except a probe this machine lacks (the kernel's peak needs
    # /proc/self/clear_refs), each such row saying why; an ok row has no reason. (Private
    # agents grow every probe by megabytes: no per-agent figure is below a page here.)
    assert set(not_ok.probe) <= {probes.VMHWM}, not_ok[["phase", "metric", "probe", "reason"]]
    assert set(not_ok.status) <= {"unavailable"}
    assert (not_ok.reason.str.len() > 0).all(), not_ok[["phase", "metric", "reason"]]
    assert private_run[private_run.status == "ok"].reason.isna().all()
    if probes.KernelPeak().available:
        assert not_ok.empty, not_ok[["phase", "metric", "probe", "reason"]]


def test_every_row_carries_the_configuration(private_run):
    assert set(private_run.backend) == {"pymdp-numpy"}
    assert set(private_run.grid) == {GRID} and set(private_run.states) == {GRID * GRID}
    assert set(private_run.agents) == {2} and set(private_run.sharing) == {"private"}
    assert private_run.config_id.nunique() == 1
    # layout is known only once the agents exist; the earlier rows must hold it too.
    assert set(private_run.layout) == {"objects"}
    assert private_run.pymdp_version.notna().all()


def test_all_phases_are_present(private_run):
    assert set(private_run.phase) >= EXPECTED_PHASES
    assert "failure" not in set(private_run.phase)


def test_steps_and_repeats_are_all_recorded(private_run):
    steps = private_run[private_run.phase.isin(["compile", "step"])]
    assert set(steps.repeat) == {0, 1, 2}  # default 3 repeats
    assert set(steps.step) == set(range(20))  # default 20 steps
    compile_rows = private_run[private_run.phase == "compile"]
    assert set(zip(compile_rows.repeat, compile_rows.step, strict=True)) == {(0, 0)}
    operations = {"infer_states", "infer_policies", "sample_action"}
    assert set(steps.operation) == operations
    # Each step of the first repeat has its levels; every other value is tied to no one
    # repeat or step, and says so with null (never -1), in pandas's nullable Int64.
    levels = private_run[(private_run.phase == "growth") & private_run.step.notna()]
    assert set(levels.repeat) == {0} and set(levels.step) == set(range(20))
    untied = private_run.drop(steps.index.union(levels.index))
    assert not untied.empty and untied.repeat.isna().all() and untied.step.isna().all()
    assert {str(private_run[c].dtype) for c in ("repeat", "step")} == {"Int64"}


def test_the_reference_configuration_scores_perfectly(private_run):
    precision = private_run[private_run.phase == "precision"].set_index("metric").value
    assert precision["max_abs_qs_error"] == 0.0
    assert precision["max_kl_qs"] == 0.0
    # Private copies hold the same bits in the same (C) order as the reference's model.
    assert precision["max_abs_q_pi_error"] == 0.0
    assert precision["action_agreement"] == 1.0


def test_an_unsupported_combination_is_refused_without_a_file(tmp_path):
    out = tmp_path / "csr.parquet"
    result = memsweep(
        "measure",
        "--backend",
        "pymdp-numpy",
        "--storage",
        "csr",
        "--dtype",
        "float64",
        "--grid",
        "5",
        "--agents",
        "1",
        "--sharing",
        "shared",
        "--policy-len",
        "1",
        "--out",
        str(out),
        check=False,
    )
    assert result.returncode != 0
    message = result.stderr.lower()
    assert "unsupported configuration" in message
    assert "sparse" in message or "dense" in message
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_help_documents_every_option():
    result = memsweep("measure", "--help")
    parser = build_parser()
    (subcommands,) = [a for a in parser._actions if a.dest == "command"]
    measure = subcommands.choices["measure"]
    options = [a for a in measure._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 13
    for action in options:
        assert action.help, f"{action.option_strings} has no help"
        for flag in action.option_strings:
            assert flag in result.stdout, flag
    for word in ("pymdp-numpy", "float16", "coo", "private", "shared", "Parquet"):
        assert word in result.stdout


# --- the sharing axis: 4 agents, private copies vs one shared model ---------------------

SHARING_STEPS = 5


@pytest.fixture(scope="module")
def sharing_runs(tmp_path_factory) -> dict[str, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("sharing")
    reference = folder / "reference.npz"
    job = Job("pymdp-numpy", "dense", "float64", GRID, 1, "shared", 1, steps=SHARING_STEPS)
    supervisor.make_reference_file(job, reference)
    runs = {}
    for sharing in ("private", "shared"):
        out = folder / f"{sharing}.parquet"
        memsweep(
            "measure",
            *AXES,
            "--grid",
            str(GRID),
            "--agents",
            "4",
            "--sharing",
            sharing,
            "--policy-len",
            "1",
            "--steps",
            str(SHARING_STEPS),
            "--repeats",
            "1",
            "--reference",
            str(reference),
            "--out",
            str(out),
        )
        runs[sharing] = schema.read_frame(out)
    return runs


def test_private_agents_each_hold_a_model_and_shared_agents_do_not(sharing_runs):
    private, shared = sharing_runs["private"], sharing_runs["shared"]
    model = value(private, "model", "A", "bytes", probes.EXACT) + value(
        private, "model", "B", "bytes", probes.EXACT
    )
    assert model == A_BYTES + B_BYTES
    private_per_agent = value(private, "build", "agents", "per_agent_bytes", probes.TRACEMALLOC)
    shared_per_agent = value(shared, "build", "agents", "per_agent_bytes", probes.TRACEMALLOC)
    assert private_per_agent >= model
    assert shared_per_agent < 0.1 * model
    # The summary says the same.
    assert value(private, "summary", "all", "per_agent_bytes", probes.TRACEMALLOC) >= model
    assert value(shared, "summary", "all", "per_agent_bytes", probes.TRACEMALLOC) < 0.1 * model


def test_sharing_does_not_change_the_beliefs(sharing_runs):
    for frame in sharing_runs.values():
        precision = frame[frame.phase == "precision"].set_index("metric").value
        assert precision["max_abs_qs_error"] == 0.0
        assert precision["max_abs_q_pi_error"] == 0.0
        assert precision["action_agreement"] == 1.0


@pytest.mark.parametrize("sharing", ["private", "shared"])
def test_the_summary_peak_covers_every_window(sharing_runs, sharing):
    # The process peak since the baseline is at least the peak of any window in it: the
    # build-time temporaries (the dense float64 copy of each matrix) are in it even though
    # every later window resets the peak counters.
    frame = sharing_runs[sharing]
    peak = value(frame, "summary", "all", "peak_bytes", probes.TRACEMALLOC)
    model_peak = value(frame, "build", "model", "call_peak_bytes", probes.TRACEMALLOC)
    model_level = value(frame, "build", "model", "growth_bytes", probes.TRACEMALLOC)
    agents_peak = value(frame, "build", "agents", "call_peak_bytes", probes.TRACEMALLOC)
    assert peak >= model_peak
    assert peak >= model_level + agents_peak - 64 * 1024  # a little slack for the levels' gc


def test_from_path_takes_the_axes_from_a_hive_path(tmp_path):
    relative = "backend=lean/storage=csr/dtype=float32/grid=4/agents=2/sharing=shared"
    out = tmp_path / relative / "policy_len=1.parquet"
    memsweep("measure", "--from-path", "--steps", "3", "--repeats", "1", "--out", str(out))
    table = schema.read_file(out).to_pandas()
    assert set(table.backend) == {"lean"} and set(table.storage) == {"csr"}
    assert set(table.grid) == {4} and set(table.agents) == {2} and set(table.policy_len) == {1}


def test_missing_axes_are_named(tmp_path):
    result = memsweep("measure", "--out", str(tmp_path / "x.parquet"), check=False)
    assert result.returncode == 2
    assert "missing --backend, --storage" in result.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_a_per_agent_figure_a_probe_cannot_resolve_is_unavailable_not_zero():
    from memsweep.harness.measure import PAGE_BYTES, growth, per_agent

    before = {
        probes.TRACEMALLOC: probes.Reading(1000.0, probes.TRACEMALLOC),
        probes.ANON: probes.Reading(50 * PAGE_BYTES, probes.ANON),
        probes.USS: probes.Reading(float("nan"), probes.USS, status="unavailable", reason="x"),
    }
    after = {
        probes.TRACEMALLOC: probes.Reading(7000.0, probes.TRACEMALLOC),  # 3 kB an agent
        probes.ANON: probes.Reading(50 * PAGE_BYTES, probes.ANON),  # not one page more
        probes.USS: probes.Reading(90 * PAGE_BYTES, probes.USS),
    }
    shares = per_agent(growth(before, after), agents=2)
    assert shares[probes.TRACEMALLOC] == probes.Reading(3000.0, probes.TRACEMALLOC)
    anon = shares[probes.ANON]
    assert anon.status == "unavailable" and anon.value != anon.value  # NaN, not 0
    assert anon.reason == (
        f"the 2 agent(s) changed rss_anon by 0 B, under one page ({PAGE_BYTES} B), "
        "the least it resolves"
    )
    assert (shares[probes.USS].status, shares[probes.USS].reason) == ("unavailable", "x")
    grown = {**after, probes.ANON: probes.Reading(58 * PAGE_BYTES, probes.ANON)}  # 8 pages
    assert per_agent(growth(before, grown), 4)[probes.ANON] == probes.Reading(
        2 * PAGE_BYTES, probes.ANON
    )
