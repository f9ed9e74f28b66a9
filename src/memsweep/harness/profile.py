"""A deep profile of one configuration with memray: what is alive at the heap's peak, by
site, and memray's flame graph.

``memsweep profile`` runs the job's measurement once more, in a fresh process under the
supervisor and its memory cap (``python -m memsweep.harness.profile``), with
``memray.Tracker(native_traces=True)`` on from the post-import baseline to the end of
the first repeat's steps (later repeats redo the same work): the agents' work, the span
of ``summary/peak_bytes`` less the harness's own arithmetic after the steps (a
least-squares fit whose LAPACK call makes OpenBLAS allocate a 32 MB buffer, which would
be the high-water mark). The capture is memray's aggregated format: what is alive at
the high-water mark is tallied as the job runs (a JAX capture reads in 2.5 s, not 7 s,
and is a third of the size), which is all the rows and the flame graph read. tracemalloc
is off (memray would count its tables at the sites that allocate) and the job's own table
is not kept. memray sees
every allocation through malloc and its kin, so per-call temporaries and XLA's buffers
get their sites here. Rows (phase ``profile``, operation ``high_water``, probe
``memray``): ``peak_bytes``, the heap at its high-water mark, then per site (the first
Python frame outside the libraries, :mod:`memsweep.harness.sites`) ``alive_bytes`` and
``alive_count``, the allocations alive at that moment. An allocation with no Python
frame (a thread that XLA or BLAS started: XLA's buffers are allocated by the thread that
runs the program) is named by the first function of its native stack, innermost first,
that neither allocates nor belongs to C++'s plumbing (``std``, ``absl``, ``tsl``, Eigen,
protobuf): ``<native> xla::CpuPjRtRawLoadedExecutable::Execute``. The flame graph
(memray's, offline HTML, native frames included) shows the ``FLAME_STACKS`` largest
stacks alive at the peak; ``flamegraph_fraction`` says what share of the peak they hold.

:func:`targets` picks the configurations a sweep profiles (the workflow's checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

from memsweep.files import atomic, remove_partials
from memsweep.harness import probes, sites, supervisor, worker
from memsweep.harness.measure import Measurement, provenance
from memsweep.plan.jobs import Job, reference_job
from memsweep.results.schema import to_table, write_measurements

PROGRAM = [sys.executable, "-m", "memsweep.harness.profile"]
# A native-only site: the first function name (a qualified name followed by its argument
# list) of the native stack that neither allocates nor is C++'s plumbing.
# A run of name characters followed by "(", matched only from its first character (the
# look-behind) and without backtracking: a frame of C++ templates runs to thousands of
# characters, on which a backtracking pattern took 5 ms (minutes for a JAX capture).
_CALL = re.compile(r"(?<![\w:])[\w:]++(?=\()")
_ALLOCATING = re.compile(r"alloc|malloc|operator new|mmap", re.IGNORECASE)
_PLUMBING = ("std::", "__gnu_cxx::", "absl::", "tsl::", "Eigen::", "google::protobuf::")
# Stacks the flame graph draws, the largest first: memray builds it in Python, and a JAX
# job holds ~260,000 stacks at its peak (80 s for all of them, 3 s for these, ~94 % of
# the bytes); a numpy job holds fewer, all drawn.
FLAME_STACKS = 5_000
# Native-only stacks named by their native function, the largest first: symbolising a
# native stack is the slow part of reading a capture (PyMDP's cue-chaining world under
# JAX holds hundreds of thousands at its peak: over 15 minutes for all of them). The
# smaller ones share one site, ``UNNAMED``, whose bytes stay counted.
NATIVE_STACKS = 20_000
UNNAMED = "<native> smaller stacks, not symbolised"
# What the checkpoint ranks configurations by: the process's peak above its baseline.
RANKED_BY = ("summary", "all", "peak_bytes", probes.VMHWM)


class Profiled(Measurement):
    """A measurement under memray, from the post-import baseline to the end of the steps."""

    def __init__(self, job: Job, reference, on_phase, capture: Path):
        super().__init__(job, reference, on_phase)
        import memray

        self.memray = memray.Tracker(
            capture, native_traces=True, file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS
        )

    def set_baseline(self) -> None:
        super().set_baseline()
        self.heap.stop()  # tracemalloc off: memray would see its tables as the job's

    def build(self) -> None:
        self.memray.__enter__()
        super().build()

    def steps(self) -> None:
        # The first repeat only: each repeat resets the agents and does the same work
        # again, so the heap's high-water mark is reached in the first, and memray's
        # native stacks make every further step several times slower (JAX: 47 s for 3).
        super().steps(repeats=1)
        self.memray.__exit__(None, None, None)

    def compiled_plans(self) -> None:
        """Not read: the profile keeps no table, and XLA's plans would compile again."""

    def allocation_sites(self) -> None:
        """No second build: the profile's sites are memray's."""


# The child ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m memsweep.harness.profile``: the supervisor's child, as its worker is."""
    parser = argparse.ArgumentParser(prog="python -m memsweep.harness.profile")
    parser.add_argument("--job", required=True, help="the job's settings as JSON")
    parser.add_argument("--reference", required=True, help="reference trace (.npz)")
    parser.add_argument("--capture", required=True, help="memray's capture file to write")
    parser.add_argument("--phase-file")
    parser.add_argument("--error-file")
    parser.add_argument("--peak-file")
    parser.add_argument("--supervisor-pid", type=int)
    args = parser.parse_args(argv)
    worker._die_with(args.supervisor_pid)
    high_water = worker.HighWater().install()
    on_phase = worker._phase_writer(args.phase_file, high_water)
    try:
        from memsweep.harness.reference import Reference

        job = Job.from_dict(json.loads(args.job))
        worker.check_environment(job)
        Profiled(job, Reference.load(args.reference), on_phase, Path(args.capture)).run()
    except BaseException as error:  # the supervisor turns this into a failed record
        if args.error_file:
            report = {"type": type(error).__name__, "message": str(error),
                      "traceback": traceback.format_exc()}  # fmt: skip
            Path(args.error_file).write_text(json.dumps(report))
        traceback.print_exc()
        return 1
    finally:
        high_water.report(args.peak_file)
    return 0


# Reading the capture --------------------------------------------------------------------------
_NO_PYTHON = "no Python frame"  # a stack of native frames only (XLA's, BLAS's threads)


def python_site(stack) -> str | None:
    """The site of a Python stack (most recent frame first): the first frame outside the
    libraries; None for the harness's own; :data:`_NO_PYTHON` for an empty stack."""
    for function, filename, lineno in stack:
        if not sites.is_library(filename):
            return None if sites.is_harness(filename) else sites.name(filename, lineno, function)
    if stack:
        function, filename, lineno = stack[-1]
        return sites.name(filename, lineno, function) + " [library frames only]"
    return _NO_PYTHON


def site_of(record, native: bool = True, known: dict | None = None) -> str | None:
    """The site of one of memray's records (see the module's docstring); None for the
    harness's own allocations (its records, its probes' readings), left out of the sites.
    ``native`` False: a native-only stack is not symbolised (:data:`UNNAMED`). ``known``:
    the Python sites found so far, by memray's ``stack_id`` (one id, one Python stack: a
    JAX capture's 260,000 records share ~2,000, and reading a stack costs ~20 µs)."""
    if known is not None and record.stack_id in known:
        site = known[record.stack_id]
    else:
        site = python_site(record.stack_trace())
        if known is not None:
            known[record.stack_id] = site
    if site != _NO_PYTHON:
        return site
    if not native:
        return UNNAMED
    return "<native> " + native_function(name for name, _, _ in record.hybrid_stack_trace())


def _qualified_calls(frame: str):
    """Every qualified name (``a::b``) called in ``frame``, in order."""
    for token in _CALL.findall(frame):
        token = token.lstrip(":")  # "(anonymous namespace)::f(" names "f"'s scope from "::"
        if "::" in token and not token[0].isdigit() and not token.endswith(":"):
            yield token


def native_function(frames) -> str:
    """The first function of a native stack (innermost first) that is no allocator's and
    no plumbing's (see the module's docstring); the innermost frame where none is."""
    frames = list(frames)
    for frame in frames:
        for function in _qualified_calls(frame):
            if not _ALLOCATING.search(function) and not function.startswith(_PLUMBING):
                return function
    return frames[0] if frames else "unknown"


class HighWater:
    """memray's capture, read once: the heap at its high-water mark and what was alive."""

    def __init__(self, capture: Path):
        import memray

        self.reader = memray.FileReader(capture)
        records = self.reader.get_high_watermark_allocation_records(merge_threads=True)
        # The largest first, once: the sites symbolise the largest, the flame graph draws them.
        self.records = sorted(records, key=lambda record: record.size, reverse=True)
        self.peak = self.reader.metadata.peak_memory

    def alive(self) -> list[sites.Site]:
        """Every site alive at the high-water mark, the largest first (the harness's own
        allocations left out: ``peak_bytes`` holds them)."""
        grouped: dict[str, list[int]] = {}
        known: dict[int, str | None] = {}
        for index, record in enumerate(self.records):
            site = site_of(record, native=index < NATIVE_STACKS, known=known)
            if site is None:
                continue
            totals = grouped.setdefault(site, [0, 0])
            totals[0] += record.size
            totals[1] += record.n_allocations
        alive = [sites.Site(name, size, count) for name, (size, count) in grouped.items()]
        return sorted(alive, key=lambda site: site.bytes, reverse=True)

    def drawn(self) -> list:
        """The stacks the flame graph draws: the ``FLAME_STACKS`` largest."""
        return self.records[:FLAME_STACKS]

    def rows(self, job: Job, count: int = sites.TOP) -> list[dict]:
        """The profile's rows: memray's peak, the share of it the flame graph draws, then
        the top ``count`` sites alive at it."""
        common = {**job.columns(), **provenance(job.backend, job.pymdp_version), "phase": "profile",
                  "operation": "high_water", "probe": probes.MEMRAY, "status": "ok"}  # fmt: skip
        total = sum(record.size for record in self.records)
        drawn = sum(record.size for record in self.drawn())
        found = [
            {**common, "metric": "peak_bytes", "value": float(self.peak), "unit": "B"},
            {**common, "metric": "flamegraph_fraction", "unit": "1",
             "value": drawn / total if total else float("nan")},
        ]  # fmt: skip
        for site in self.alive()[:count]:
            found.append({**common, "metric": "alive_bytes", "value": float(site.bytes),
                          "unit": "B", "site": site.name})  # fmt: skip
            found.append({**common, "metric": "alive_count", "value": float(site.count),
                          "unit": "count", "site": site.name})  # fmt: skip
        return found

    def write_flamegraph(self, out: Path) -> None:
        """memray's flame graph of the heap at its high-water mark, one offline HTML file."""
        from memray.reporters.flamegraph import FlameGraphReporter

        reporter = FlameGraphReporter.from_snapshot(
            self.drawn(),
            memory_records=tuple(self.reader.get_memory_snapshots()),
            native_traces=self.reader.metadata.has_native_traces,
        )
        with atomic(out) as temporary, open(temporary, "w") as page:
            reporter.render(page, self.reader.metadata, show_memory_leaks=False,
                            merge_threads=True, inverted=False, no_web=True)  # fmt: skip


def write_failed_flamegraph(reason: str, out: Path) -> None:
    """A page in the flame graph's place that says why there is none."""
    import html

    page = f"<!DOCTYPE html><title>no profile</title><p>The profile failed: {html.escape(reason)}"
    with atomic(out) as temporary:
        temporary.write_text(page + "</p>\n")


# The command ------------------------------------------------------------------------------------
def profile(
    job: Job,
    out: str | Path,
    flamegraph: str | Path,
    reference: str | Path | None = None,
    mem_cap_mb: float | None = None,
) -> supervisor.Outcome:
    """Profile ``job`` into ``out`` (rows) and ``flamegraph`` (HTML); a profile that fails
    leaves a failed record and a page that says why, as a measurement does."""
    out, flamegraph = Path(out), Path(flamegraph)
    with (
        supervisor._stop_signals_noted(),
        tempfile.TemporaryDirectory(prefix="memsweep-profile-") as scratch,
    ):
        if reference is None:
            reference = Path(scratch) / "reference.npz"
            supervisor.make_reference_file(reference_job(job), reference)
        capture = Path(scratch) / "capture.bin"
        args = ["--job", json.dumps(job.to_dict()), "--reference", str(reference),
                "--capture", str(capture)]  # fmt: skip
        outcome = supervisor.run_child(
            args, mem_cap_mb, program=PROGRAM, environment=worker.job_environment(job)
        )
        for path in (out, flamegraph):
            remove_partials(path)
        if outcome.ok:
            captured = HighWater(capture)
            write_measurements(to_table(captured.rows(job)), out)
            captured.write_flamegraph(flamegraph)
        else:
            supervisor.failed_record(job, outcome, out)
            write_failed_flamegraph(outcome.reason or "unknown", flamegraph)
        supervisor._raise_if_stopped()
    return outcome


# The checkpoint -------------------------------------------------------------------------------
def targets(measurements: str | os.PathLike, paths: dict[str, str]) -> list[str]:
    """Per backend, the profile path of the configuration with the largest peak above the
    baseline (``summary/all/peak_bytes`` by ``vmhwm``), among ``paths`` (config_id -> its
    profile path: the plan's runnable jobs) and the measured ones."""
    import pyarrow.parquet as pq

    phase, operation, metric, probe = RANKED_BY
    selected = [("phase", "=", phase), ("operation", "=", operation), ("metric", "=", metric),
                ("probe", "=", probe), ("status", "=", "ok")]  # fmt: skip
    table = pq.read_table(measurements, columns=["backend", "config_id", "value"],
                          filters=selected)  # fmt: skip
    largest: dict[str, tuple[float, str]] = {}
    for row in table.to_pylist():
        if row["config_id"] not in paths:
            continue
        best = largest.get(row["backend"])
        if best is None or (row["value"], row["config_id"]) > best:
            largest[row["backend"]] = (row["value"], row["config_id"])
    return sorted(paths[config_id] for _, config_id in largest.values())


def write_targets(measurements, paths: dict[str, str], out: str | os.PathLike) -> list[str]:
    """The checkpoint: :func:`targets` into ``out``, one profile path a line."""
    chosen = targets(measurements, paths)
    with atomic(out) as temporary:
        temporary.write_text("".join(f"{path}\n" for path in chosen))
    return chosen


if __name__ == "__main__":
    sys.exit(main())
