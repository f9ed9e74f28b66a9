"""The allocator: a job's ``malloc_arena_max`` and ``malloc_mmap_threshold`` reach its
process's glibc, are what its rows say, and are changes the report judges like any other."""

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
SHOW = (
    "import os; print('ALLOCATOR', os.environ.get('MALLOC_ARENA_MAX'), "
    "os.environ.get('MALLOC_MMAP_THRESHOLD_'))"
)


def allocator_seen(tmp_path, job: Job) -> str:
    """What the process the supervisor starts for ``job`` holds in glibc's variables."""
    log = tmp_path / f"{job.config_id}.log"
    program = [sys.executable, "-c", SHOW]  # the supervisor's options follow, unread
    outcome = supervisor.run_child([], log=log, program=program,
                                   environment=worker.job_environment(job))  # fmt: skip
    assert outcome.ok, outcome.reason
    return next(line for line in log.read_text().splitlines() if line.startswith("ALLOCATOR"))


def test_the_job_not_the_shell_sets_the_allocator(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # a user's shell
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert (JOB.malloc_arena_max, JOB.malloc_mmap_threshold) == (0, 131072)  # the defaults
    assert allocator_seen(tmp_path, JOB) == "ALLOCATOR None 131072"
    glibc = replace(JOB, malloc_arena_max=2, malloc_mmap_threshold=0)
    assert allocator_seen(tmp_path, glibc) == "ALLOCATOR 2 None"


def test_a_process_started_without_the_jobs_arenas_refuses_it():
    one = replace(JOB, malloc_arena_max=1)
    fixed = {"MALLOC_MMAP_THRESHOLD_": "131072"}
    worker.check_environment(one, {"MALLOC_ARENA_MAX": "1", **fixed})
    worker.check_environment(JOB, fixed)
    worker.check_environment(replace(JOB, malloc_mmap_threshold=0), {})
    with pytest.raises(RuntimeError, match=r"asks for MALLOC_ARENA_MAX=1, this process started "
                                           r"with \(unset\)"):  # fmt: skip
        worker.check_environment(one, fixed)
    with pytest.raises(RuntimeError, match=r"MALLOC_ARENA_MAX=\(unset\).*started with 8"):
        worker.check_environment(JOB, {"MALLOC_ARENA_MAX": "8", **fixed})
    with pytest.raises(RuntimeError, match=r"MALLOC_MMAP_THRESHOLD_=131072.*\(unset\)"):
        worker.check_environment(JOB, {})


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


# A block of 1 MiB is mapped, freed, then asked for again: glibc's dynamic threshold has
# risen to 1 MiB by then, so the second comes from the heap; a fixed one maps it again.
# mallinfo2's hblks counts the blocks mapped on their own.
MAPPED_AGAIN = textwrap.dedent(f"""
    import ctypes
    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks",
                    "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL({ctypes.util.find_library("c")!r})
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = Mallinfo2
    libc.free(libc.malloc(1 << 20))
    before = libc.mallinfo2().hblks
    block = libc.malloc(1 << 20)
    print(libc.mallinfo2().hblks - before)
""")


@pytest.mark.skipif(not ctypes.util.find_library("c"), reason="no C library to load")
@pytest.mark.parametrize(("threshold", "mapped"), [(131072, "1"), (0, "0")])
def test_glibc_maps_large_blocks_by_the_jobs_threshold(threshold, mapped):
    job = replace(JOB, malloc_mmap_threshold=threshold)
    environment = supervisor.child_environment(**worker.job_environment(job))
    done = subprocess.run([sys.executable, "-c", MAPPED_AGAIN], env=environment,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    if "mallinfo2" in done.stderr:
        pytest.skip("this C library has no mallinfo2 (glibc 2.33 or later)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == mapped


def test_ids_of_jobs_measured_before_the_settings_stay_theirs():
    # Measured before the allocator settings existed (glibc's own, both): this id.
    glibc = replace(JOB, malloc_arena_max=0, malloc_mmap_threshold=0)
    assert glibc.config_id == "1884f1ba7412"
    assert JOB.config_id != glibc.config_id
    # One reference trace serves every allocator: it changes no belief.
    assert (
        reference_job(glibc)
        == reference_job(replace(JOB, malloc_arena_max=1))
        == (reference_job(JOB))
    )


def test_a_file_from_before_the_settings_reads_glibcs_own():
    table = to_table([{**JOB.columns(), "phase": "summary", "operation": "all",
                       "metric": "peak_bytes", "probe": "vmhwm", "value": 1.0, "unit": "B",
                       "status": "ok"}])  # fmt: skip
    capped = to_table([{**replace(JOB, malloc_arena_max=2).columns(), "phase": "summary",
                        "operation": "all", "metric": "peak_bytes", "probe": "vmhwm",
                        "value": 1.0, "unit": "B", "status": "ok"}])  # fmt: skip
    older = validate(capped.drop_columns(["malloc_arena_max", "malloc_mmap_threshold"]))
    assert older.column("malloc_arena_max").to_pylist() == [0]
    assert older.column("malloc_mmap_threshold").to_pylist() == [0]
    assert validate(capped).column("malloc_arena_max").to_pylist() == [2]
    assert validate(table).column("malloc_mmap_threshold").to_pylist() == [131072]
    assert older.schema.field("malloc_mmap_threshold").type == pa.int64()


def test_the_predictor_fits_each_allocator_on_its_own():
    defaults = {"malloc_arena_max": 0, "malloc_mmap_threshold": 131072}
    assert fitted.key("pymdp-jax") == fitted.key("pymdp-jax", "grid", defaults) == "pymdp-jax"
    assert fitted.key("pymdp-jax", "grid", {"malloc_arena_max": 1}) == (
        "pymdp-jax · MALLOC_ARENA_MAX=1"
    )
    glibc = {"malloc_arena_max": 0, "malloc_mmap_threshold": 0}
    assert fitted.key("lean", "tmaze", glibc) == "lean · tmaze · glibc's dynamic mmap threshold"
    assert fitted.job_key(replace(JOB, malloc_arena_max=1)) == "lean · MALLOC_ARENA_MAX=1"


def test_the_allocator_is_a_change_the_report_judges():
    fixed = {"malloc_arena_max": 0, "malloc_mmap_threshold": 131072}
    base = config(backend="pymdp-jax", **fixed)
    glibc = config(backend="pymdp-jax", **fixed | {"malloc_mmap_threshold": 0}) | {
        "config_id": "jax-glibc"
    }
    one = config(backend="pymdp-jax", **fixed | {"malloc_arena_max": 1}) | {
        "config_id": "jax-one-arena"
    }
    frame = make_df(
        *(
            row(cfg, "cleanup", "drop_agents", "retained_bytes", "rss_anon", held)
            for cfg, held in ((glibc, 80e6), (base, 2e6), (one, 1e6))
        )
    )
    (h,) = hotspots.rank(frame)
    assert h.base.config_id == "jax-glibc"
    savings = {f.label(): f.saving["rss_anon"].bytes for f in h.fixes}
    assert savings == {"malloc_mmap_threshold 0 → 131072": 78e6}
    labels = {c: needed.label(frame[frame.config_id == c].iloc[0]) for c in frame.config_id}
    assert labels["jax-glibc"].endswith(" · glibc's dynamic mmap threshold")
    assert labels["jax-one-arena"].endswith(" · MALLOC_ARENA_MAX=1")
    assert "MALLOC" not in labels[base["config_id"]] and "glibc" not in labels[base["config_id"]]


def test_a_variant_a_few_bytes_ahead_is_not_the_worst_configuration():
    """Equal figures (within the probe's resolution) belong to the base the fixes were
    measured from, not to the variant that happens to read a few bytes more."""
    base = config(malloc_mmap_threshold=131072)
    glibc = config(malloc_mmap_threshold=0) | {"config_id": "lean-glibc"}
    csr = config(storage="csr", malloc_mmap_threshold=131072)
    frame = make_df(
        *(
            row(cfg, "build", "agents", "growth_bytes", "tracemalloc", value)
            for cfg, value in ((base, 76.9e6), (glibc, 76.9e6 + 300), (csr, 0.5e6))
        )
    )
    resolution = {"tracemalloc": 4096.0}
    (h,) = [h for h in hotspots.rank(frame, resolution=resolution) if h.consumer.key == "agents"]
    assert h.base.config_id == base["config_id"]
    assert {f.label() for f in h.fixes} == {
        "storage dense → csr",
        "malloc_mmap_threshold 131072 → 0",
    }
    # Apart by more than the resolution, the larger is the worst.
    frame.loc[frame.config_id == "lean-glibc", "value"] = 80e6
    (h,) = [h for h in hotspots.rank(frame, resolution=resolution) if h.consumer.key == "agents"]
    assert h.base.config_id == "lean-glibc"
