"""glibc's malloc arenas: a job's ``malloc_arena_max`` reaches its process's allocator,
is what its rows say, and is a change the report judges like any other."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
import textwrap
from dataclasses import replace

import pyarrow as pa
import pytest

from memsweep.harness import supervisor, worker
from memsweep.plan import fitted
from memsweep.plan.jobs import Job, reference_job
from memsweep.report import hotspots, needed
from memsweep.results.schema import to_table, validate

from .test_report_units import config, make_df, row

JOB = Job("lean", "dense", "float64", 5, 1, "private", 1)
SHOW = "import os; print('ARENAS', os.environ.get('MALLOC_ARENA_MAX'))"


def arenas_seen(tmp_path, job: Job) -> str:
    """What the process the supervisor starts for ``job`` holds in MALLOC_ARENA_MAX."""
    log = tmp_path / f"{job.malloc_arena_max}.log"
    program = [sys.executable, "-c", SHOW]  # the supervisor's options follow, unread
    outcome = supervisor.run_child([], log=log, program=program,
                                   environment=worker.job_environment(job))  # fmt: skip
    assert outcome.ok, outcome.reason
    return next(line for line in log.read_text().splitlines() if line.startswith("ARENAS"))


def test_the_job_not_the_shell_sets_the_arenas(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # a user's shell
    assert JOB.malloc_arena_max == 0  # glibc's own, as a user runs
    assert arenas_seen(tmp_path, JOB) == "ARENAS None"
    assert arenas_seen(tmp_path, replace(JOB, malloc_arena_max=1)) == "ARENAS 1"
    assert arenas_seen(tmp_path, replace(JOB, malloc_arena_max=2)) == "ARENAS 2"


def test_a_process_started_without_the_jobs_arenas_refuses_it():
    one = replace(JOB, malloc_arena_max=1)
    worker.check_environment(one, {"MALLOC_ARENA_MAX": "1"})
    worker.check_environment(JOB, {})
    with pytest.raises(RuntimeError, match=r"asks for MALLOC_ARENA_MAX=1, this process started "
                                           r"with \(unset\)"):  # fmt: skip
        worker.check_environment(one, {})
    with pytest.raises(RuntimeError, match=r"MALLOC_ARENA_MAX=\(unset\).*started with 8"):
        worker.check_environment(JOB, {"MALLOC_ARENA_MAX": "8"})


# Four threads alive at once each make their first malloc: glibc gives a thread an arena
# of its own while there are fewer than the limit (a thread that has ended hands its arena
# on, hence the barrier). malloc_stats() prints one "Arena N:" per arena.
ARENAS_OF_FOUR_THREADS = textwrap.dedent(f"""
    import ctypes, threading
    libc = ctypes.CDLL({ctypes.util.find_library("c")!r})
    libc.malloc.restype = ctypes.c_void_p
    all_allocated = threading.Barrier(4)
    def allocate():
        libc.malloc(4096)
        all_allocated.wait()
    threads = [threading.Thread(target=allocate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    libc.malloc_stats()
""")


@pytest.mark.skipif(not ctypes.util.find_library("c"), reason="no C library to load")
@pytest.mark.parametrize(("arenas", "expected"), [(1, 1), (2, 2), (0, 5)])
def test_glibc_holds_the_threads_to_the_jobs_arenas(arenas, expected):
    job = replace(JOB, malloc_arena_max=arenas)
    environment = supervisor.child_environment(**worker.job_environment(job))
    done = subprocess.run([sys.executable, "-c", ARENAS_OF_FOUR_THREADS], env=environment,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = [line for line in done.stderr.splitlines() if line.startswith("Arena ")]
    if not listed:
        pytest.skip("this C library's malloc_stats lists no arenas (not glibc)")
    # glibc's default is 8 a core: the main thread's and the four threads' own.
    assert len(listed) == expected


def test_ids_of_jobs_measured_before_the_setting_stay_theirs():
    # Measured before malloc_arena_max existed (glibc's default arenas): this id.
    assert JOB.config_id == "1884f1ba7412"
    assert replace(JOB, malloc_arena_max=1).config_id != JOB.config_id
    # One reference trace serves both: the allocator changes no belief.
    assert reference_job(replace(JOB, malloc_arena_max=1)) == reference_job(JOB)


def test_a_file_from_before_the_setting_reads_glibcs_default():
    table = to_table([{**JOB.columns(), "phase": "summary", "operation": "all",
                       "metric": "peak_bytes", "probe": "vmhwm", "value": 1.0, "unit": "B",
                       "status": "ok"}])  # fmt: skip
    capped = to_table([{**replace(JOB, malloc_arena_max=2).columns(), "phase": "summary",
                        "operation": "all", "metric": "peak_bytes", "probe": "vmhwm",
                        "value": 1.0, "unit": "B", "status": "ok"}])  # fmt: skip
    older = capped.drop_columns(["malloc_arena_max"])
    assert validate(older).column("malloc_arena_max").to_pylist() == [0]
    assert validate(capped).column("malloc_arena_max").to_pylist() == [2]
    assert validate(table).column("malloc_arena_max").to_pylist() == [0]
    assert validate(older).schema.field("malloc_arena_max").type == pa.int64()


def test_the_predictor_fits_each_allocator_on_its_own():
    assert fitted.key("pymdp-jax") == fitted.key("pymdp-jax", "grid", 0) == "pymdp-jax"
    assert fitted.key("pymdp-jax", "grid", 1) == "pymdp-jax · MALLOC_ARENA_MAX=1"
    assert fitted.key("lean", "tmaze", 2) == "lean · tmaze · MALLOC_ARENA_MAX=2"
    assert fitted.job_key(replace(JOB, malloc_arena_max=1)) == "lean · MALLOC_ARENA_MAX=1"


def test_the_arenas_are_a_change_the_report_judges():
    glibc = config(backend="pymdp-jax", malloc_arena_max=0)
    one = config(backend="pymdp-jax", malloc_arena_max=1) | {"config_id": "jax-one-arena"}
    frame = make_df(
        *(
            row(cfg, "step", "step", "call_peak_bytes", "vmhwm", peak, step=step)
            for cfg, peak in ((glibc, 9e6), (one, 3e6))
            for step in (0, 1)
        )
    )
    (h,) = hotspots.rank(frame)
    assert h.base.config_id == glibc["config_id"]
    savings = {f.label(): f.saving["vmhwm"].bytes for f in h.fixes}
    assert savings == {"malloc_arena_max 0 → 1": 6e6}
    labels = {c: needed.label(frame[frame.config_id == c].iloc[0]) for c in frame.config_id}
    assert labels["jax-one-arena"].endswith(" · MALLOC_ARENA_MAX=1")
    assert "ARENA" not in labels[glibc["config_id"]]
