"""The ``memsweep`` command as a user meets it: checks before work, honest exit statuses.

Every mistake is refused before anything is measured, in one line on stderr with exit
status 2 (``--debug`` adds the traceback); a measurement that fails exits 3 with its
failed record written, and the workflow's measure rule accepts that; Ctrl-C is one line
and 130. Each case runs the installed command, as a user would.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from types import SimpleNamespace

import numpy as np
import psutil
import pytest

from memsweep import cli
from memsweep.harness.reference import Reference
from memsweep.plan import config, jobs
from memsweep.results import schema
from memsweep.world.base import WorldSettings

from .conftest import BIN, ROOT, TEST_CONFIG, memsweep, tiny_config

LEAN = ["--backend", "lean", "--storage", "csr", "--dtype", "float32"]
TINY = [*("--agents", "1", "--sharing", "shared", "--policy-len", "1")]
QUICK = ["--steps", "3", "--repeats", "1"]
GRID3 = ["measure", *LEAN, *TINY, "--grid", "3"]  # a valid job, short of --out
NUMPY_CSR = ["--backend", "pymdp-numpy", "--storage", "csr", "--dtype", "float64"]


def fake_reference(path, grid: int = 3, steps: int = 3, policy_len: int = 1):
    """A reference trace of the right shape for a world (uniform beliefs): cheap to make."""
    states, policies = grid * grid, 5**policy_len
    Reference(
        observations=np.zeros((steps, 1), int),
        actions=np.zeros((steps, 1), int),
        qs=np.full((steps, states), 1 / states),
        q_pi=np.full((steps, policies), 1 / policies),
        world=WorldSettings(grid=grid),
        policy_len=policy_len,
    ).save(path)
    return path


@pytest.fixture
def paths(tmp_path) -> SimpleNamespace:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "not.npz").write_text("not a reference")
    (tmp_path / "bad.yaml").write_text("sweep: [unclosed\n")
    (tmp_path / "zero-grid.yaml").write_text(
        TEST_CONFIG.read_text().replace("grid: [4]", "grid: [1]")
    )
    (tmp_path / "folder.parquet").mkdir()
    return SimpleNamespace(
        tmp=tmp_path,
        out=str(tmp_path / "x.parquet"),
        grid5=str(fake_reference(tmp_path / "grid5.npz", grid=5, steps=20)),
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    """The one line a refused command writes on stderr."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# (case, command given the paths, what its one line says)
MISTAKES = [
    (
        "grid below its minimum",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "0", "--out", p.out],
        "memsweep measure: error: argument --grid: must be at least 2, got 0",
    ),
    (
        "grid of 1: the same words",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "1", "--out", p.out],
        "argument --grid: must be at least 2, got 1",
    ),
    (
        "grid above its maximum",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "201", "--out", p.out],
        "argument --grid: must be at most 200, got 201",
    ),
    (
        "grid not a number",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "big", "--out", p.out],
        "argument --grid: expected an integer, got 'big'",
    ),
    (
        "unknown backend",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "3", "--backend", "pymdp-torch"],
        "argument --backend: invalid choice: 'pymdp-torch'",
    ),
    (
        "model setting out of bounds through --set",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "3", "--set", "steps=1", "--out", p.out],
        "memsweep measure: error: steps must be at least 2, got 1",
    ),
    (
        "memory cap not positive",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "3", "--mem-cap-mb", "0", "--out", p.out],
        "argument --mem-cap-mb: must be above 0, got 0",
    ),
    (
        "missing axes",
        lambda p: ["measure", "--out", p.out],
        "memsweep measure: error: missing --backend, --storage",
    ),
    (
        "unsupported combination",
        lambda p: ["measure", *NUMPY_CSR, *TINY, "--grid", "3", "--out", p.out],
        "memsweep measure: error: unsupported configuration (pymdp-numpy, csr, float64)",
    ),
    (
        "out not .parquet",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "3", "--out", str(p.tmp / "x.csv")],
        "must end in .parquet",
    ),
    (
        "out is a folder",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "3", "--out", str(p.tmp / "folder.parquet")],
        "is a folder; name the .parquet file to write",
    ),
    (
        "out's folder cannot be made",
        lambda p: [*GRID3, "--out", str(p.tmp / "a-file" / "x.parquet")],
        "cannot make folder",
    ),
    (
        "out's folder is not writable",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "3", "--out", "/proc/x.parquet"],
        "--out /proc/x.parquet: cannot write in folder /proc",
    ),
    (
        "no such reference",
        lambda p: [*GRID3, "--reference", str(p.tmp / "none.npz"), "--out", p.out],
        "none.npz: no such file",
    ),
    (
        "reference not a trace",
        lambda p: [*GRID3, "--reference", str(p.tmp / "not.npz"), "--out", p.out],
        "not a readable reference trace",
    ),
    (
        "reference of another world",
        lambda p: ["measure", *LEAN, *TINY, "--grid", "3", "--reference", p.grid5, "--out", p.out],
        "grid5.npz: made for another job: grid 5 (this job: 3)",
    ),
    (
        "reference too short",
        lambda p: [*GRID3[:-1], "5", "--steps", "30", "--reference", p.grid5, "--out", p.out],
        "made for another job: only 20 steps (this job: 30)",
    ),
    (
        "calibration size not positive",
        lambda p: ["calibrate", "--out", p.out, "--sizes-kb", "8", "0"],
        "memsweep calibrate: error: argument --sizes-kb: must be above 0, got 0",
    ),
    (
        "calibration out not writable",
        lambda p: ["calibrate", "--out", "/proc/calibration.parquet"],
        "memsweep calibrate: error: --out /proc/calibration.parquet: cannot write in folder",
    ),
    (
        "calibration out not .parquet",
        lambda p: ["calibrate", "--out", str(p.tmp / "calibration.csv")],
        "must end in .parquet",
    ),
    (
        "no such config",
        lambda p: ["plan", str(p.tmp / "none.yaml")],
        "memsweep plan: error: " + "{tmp}/none.yaml: no such config file",
    ),
    (
        "config is a folder",
        lambda p: ["plan", str(p.tmp)],
        "is a folder, not a config file",
    ),
    (
        "config not YAML",
        lambda p: ["plan", str(p.tmp / "bad.yaml")],
        "bad.yaml: not valid YAML",
    ),
    (
        "config out of bounds",
        lambda p: ["plan", str(p.tmp / "zero-grid.yaml")],
        "invalid config: sweep.grid[0]: 1 is less than the minimum of 2",
    ),
    (
        "plan out not writable",
        lambda p: ["plan", str(TEST_CONFIG), "--out", "/proc/plan.parquet"],
        "--out /proc/plan.parquet: cannot write in folder /proc",
    ),
]


@pytest.mark.parametrize(("case", "command", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_is_one_line_and_status_2(paths, case, command, message):
    result = memsweep(*command(paths), check=False)
    assert result.returncode == cli.USAGE, result.stderr
    line = one_line(result)
    assert message.format(tmp=paths.tmp) in line
    assert line.startswith(f"memsweep {command(paths)[0]}: error: ")
    assert not (paths.tmp / "x.parquet").exists()
    assert not list(paths.tmp.glob(".*.tmp*")) and not list(paths.tmp.glob(".*check*"))


def test_debug_shows_the_traceback(paths):
    for where in (["--debug", "measure"], ["measure", "--debug"]):
        command = [*where, *LEAN, *TINY, "--grid", "3", "--reference", paths.grid5, "--out"]
        result = memsweep(*command, paths.out, check=False)
        assert result.returncode == cli.USAGE
        assert "Traceback" in result.stderr and "CliError" in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("memsweep measure: error: ")


def test_help_states_every_bound_as_the_errors_and_the_schema_do():
    help_text = " ".join(memsweep("measure", "--help").stdout.split())
    sweep = config.schema()["properties"]["sweep"]["properties"]
    for name in jobs.SETTINGS:
        # The help's words (``integer, at least 2 and at most 200``) are the schema's bounds.
        assert config.bounds_text(name) in help_text, name
        if jobs.choices(name) is None:
            assert config.bounds_of(sweep[name]["items"]) == jobs.bounds(name)
    assert "exit status" in help_text and f"{cli.MEASUREMENT_FAILED} the measurement failed" in (
        help_text
    )


@pytest.mark.parametrize("name", [n for n in jobs.SETTINGS if jobs.bounds(n)])
def test_an_option_out_of_bounds_says_its_bounds(name, capsys):
    bounds = jobs.bounds(name)
    low = bounds.get("minimum", bounds.get("exclusiveMinimum"))
    value = low - 1 if jobs.TYPES[name] is int else low - 0.5
    with pytest.raises(SystemExit) as stopped:
        option = "--" + name.replace("_", "-")
        cli.build_parser().parse_args(["measure", "--out", "x.parquet", option, str(value)])
    assert stopped.value.code == cli.USAGE
    error = capsys.readouterr().err
    # The first bound it fails, in the words of the help text.
    assert f"must be {config.bounds_text(name).split(', ', 1)[1].split(' and ')[0]}" in error


def test_a_measurement_exits_0_when_it_succeeds(tmp_path):
    reference = fake_reference(tmp_path / "reference.npz")
    out = tmp_path / "ok.parquet"
    command = ["measure", *LEAN, *TINY, "--grid", "3", *QUICK, "--reference", str(reference)]
    result = memsweep(*command, "--out", str(out), check=False)
    assert result.returncode == cli.OK, result.stderr
    assert f"{out}: ok" in result.stdout
    # ok, or a probe that could not resolve a figure (a tiny agent is under one page)
    statuses = set(schema.read_measurements(out).column("status").to_pylist())
    assert "ok" in statuses and statuses <= {"ok", "unavailable"}


def test_a_failed_measurement_exits_3_with_its_record(tmp_path):
    reference = fake_reference(tmp_path / "reference.npz")
    out = tmp_path / "failed.parquet"
    command = ["measure", *LEAN, *TINY, "--grid", "3", *QUICK, "--reference", str(reference)]
    result = memsweep(*command, "--mem-cap-mb", "1", "--out", str(out), check=False)
    assert result.returncode == cli.MEASUREMENT_FAILED, result.stderr
    assert f"{out}: FAILED: exceeded memory cap of 1 MB" in result.stdout
    table = schema.read_measurements(out).to_pandas()
    assert list(table.status) == ["failed"] and list(table.phase) == ["failure"]


def test_the_measure_rule_accepts_a_failed_measurement(tmp_path):
    """The rule's command, as Snakemake runs it (bash, strict mode), on a job that fails:
    the sweep goes on, with the failed record as the job's output."""
    from memsweep.workflow import Pipeline

    pipeline = Pipeline(tiny_config())
    output = next(path for path in pipeline.measurement_files() if "backend=lean" in path)
    job = pipeline.runnable[output].job
    reference = fake_reference(tmp_path / "reference.npz", job.grid, job.steps, job.policy_len)
    command = pipeline.measure_command().format(
        output=output,
        log="measure.log",
        input=SimpleNamespace(reference=reference),
        params=SimpleNamespace(model=pipeline.model_settings()),
        resources=SimpleNamespace(mem_cap_mb=1),
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {command}"], cwd=tmp_path, env=env, check=False
    )
    log = (tmp_path / "measure.log").read_text()
    assert "FAILED: exceeded memory cap of 1 MB" in log
    assert result.returncode == 0, (
        f"the measure rule fails the sweep on exit status {cli.MEASUREMENT_FAILED}: "
        f"{shlex.quote(command)}"
    )
    assert schema.read_measurements(tmp_path / output).column("status").to_pylist() == ["failed"]


def test_ctrl_c_is_one_line_and_130(tmp_path):
    out = tmp_path / "x.parquet"
    command = [str(BIN / "memsweep"), "measure", *LEAN, *TINY, "--grid", "3", "--out", str(out)]
    # Its own session, as a terminal's foreground job: Ctrl-C reaches the whole group.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    watched, seen = psutil.Process(process.pid), []
    try:
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline and process.poll() is None:
            seen = [
                child
                for child in watched.children(recursive=True)
                if "memsweep.harness.worker" in " ".join(child.cmdline())
            ]
            time.sleep(0.05)
        assert seen, "the worker never started"
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        for child in seen:  # a worker the supervisor left behind is not this test's subject
            if child.is_running():
                child.kill()
        if process.poll() is None:
            process.kill()
    assert process.returncode == cli.INTERRUPTED, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "memsweep measure: interrupted"


def test_calibrate_help_describes_it_and_its_limits():
    result = memsweep("calibrate", "--help")
    text = " ".join(result.stdout.split())
    assert "Allocate and touch arrays of known size" in text
    assert "tracemalloc 1 %" in text and "psutil_uss 5 %" in text
    assert "3 a probe is outside its limit" in text


def test_plan_says_what_will_run_and_where(tmp_path):
    result = memsweep("plan", str(TEST_CONFIG), "--out", str(tmp_path / "plan.parquet"), cwd=ROOT)
    text = result.stdout
    assert "memsweep plan: 4 configurations, 3 to run" in text
    for axis, values in tiny_config()["sweep"].items():
        assert f"    {axis:<12} {', '.join(map(str, values))}" in text, axis
    assert "steps=4, repeats=1" in text
    assert "run: 3, unsupported: 1" in text
    assert "predicted peak memory of a job: largest" in text
    assert "3 measurement files results/measurements/backend=…/" in text
    assert f"snakemake started here writes them to {ROOT / 'results'}" in text
    assert (tmp_path / "plan.parquet").exists()


def test_the_measure_rule_accepts_exactly_the_failed_record_status():
    from memsweep import cli
    from memsweep.workflow import Pipeline

    command = Pipeline.measure_command(None)  # uses no plan: the same command for every job
    assert command.endswith(f"|| [ $? -eq {cli.MEASUREMENT_FAILED} ]")
