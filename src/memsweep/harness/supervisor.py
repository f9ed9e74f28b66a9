"""Run one job in a fresh child process, under a memory cap; every job yields a record.

The child (:mod:`memsweep.harness.worker`) starts with a clean interpreter, so the
measurement sees none of the caller's imports. The supervisor polls the
child's resident memory (RSS of the child and its descendants: real pages,
so JAX's large virtual reservations do not count) and kills it when it passes
the cap. A child that raises, passes its cap or dies by a signal still
yields its Parquet file, with ``status`` = failed and the reason.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from memsweep.files import remove_partials
from memsweep.harness import probes
from memsweep.plan.jobs import Job, reference_job
from memsweep.results.schema import to_table, write_measurements

POLL_SECONDS = 0.02
PROBE = probes.Supervisor.name


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str | None
    phase: str | None
    peak_rss_bytes: int
    seconds: float


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


def _reason_from_exit(code: int, error_file: Path, log_file: Path) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    if error_file.exists() and error_file.read_text():
        error = json.loads(error_file.read_text())
        return f"{error['type']}: {error['message']}"
    tail = (
        log_file.read_text(errors="replace").strip().splitlines()[-3:] if log_file.exists() else []
    )
    return f"exited with code {code}" + (": " + " | ".join(tail) if tail else "")


def _describe(outcome: Outcome) -> str:
    status = "ok" if outcome.ok else f"FAILED: {outcome.reason}"
    return (
        f"{status} ({outcome.seconds:.1f} s, child peak RSS {outcome.peak_rss_bytes / 1e6:.0f} MB)"
    )


def run_child(
    args: list[str], mem_cap_mb: float | None = None, log: str | Path | None = None
) -> Outcome:
    """Run ``python -m memsweep.harness.worker ARGS`` and watch it.

    The child's output goes to ``log`` (with a closing line saying how it ended), or to
    this process's stderr when no log is given.
    """
    outcome, output = _watch(args, mem_cap_mb)
    output += f"memsweep supervisor: {_describe(outcome)}\n"
    if log is None:
        sys.stderr.write(output)
    else:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(output)
    return outcome


def _watch(args: list[str], mem_cap_mb: float | None) -> tuple[Outcome, str]:
    with tempfile.TemporaryDirectory(prefix="memsweep-") as scratch:
        scratch = Path(scratch)
        phase_file, error_file, log_file = (
            scratch / "phase",
            scratch / "error.json",
            scratch / "log",
        )
        command = [sys.executable, "-m", "memsweep.harness.worker", *args]
        command += ["--phase-file", str(phase_file), "--error-file", str(error_file)]
        started = time.perf_counter()
        with open(log_file, "wb") as log:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            watched = psutil.Process(child.pid)
            peak, over_cap = 0, None
            while child.poll() is None:
                try:
                    rss = _tree_rss(watched)
                except psutil.Error:
                    rss = 0
                peak = max(peak, rss)
                if mem_cap_mb is not None and rss > mem_cap_mb * 1e6:
                    over_cap = phase_file.read_text() if phase_file.exists() else "start"
                    for member in [*watched.children(recursive=True), watched]:
                        with contextlib.suppress(psutil.Error):
                            member.kill()
                    child.wait()
                    break
                time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
        phase = phase_file.read_text() if phase_file.exists() else None
        output = log_file.read_text(errors="replace")
        if over_cap is not None:
            reason = (
                f"exceeded memory cap of {mem_cap_mb:g} MB at phase {over_cap} "
                f"(resident {peak / 1e6:.0f} MB when stopped)"
            )
            return Outcome(False, reason, over_cap, peak, seconds), output
        if child.returncode != 0:
            reason = _reason_from_exit(child.returncode, error_file, log_file)
            return Outcome(False, reason, phase, peak, seconds), output
        return Outcome(True, None, phase, peak, seconds), output


def failed_record(job: Job, outcome: Outcome, out: str | Path) -> Path:
    """The Parquet record of a job that did not finish: what happened, and where."""
    from memsweep.harness.measure import provenance

    row = {
        **job.columns(),
        **provenance(job.backend),
        "phase": "failure",
        "operation": outcome.phase or "start",
        "metric": "child_peak_rss_bytes",
        "probe": PROBE,
        "value": float(outcome.peak_rss_bytes),
        "unit": "B",
        "status": "failed",
        "reason": outcome.reason,
        "repeat": -1,
        "step": -1,
    }
    return write_measurements(to_table([row]), out)


def measure_job(
    job: Job,
    out: str | Path,
    reference: str | Path,
    mem_cap_mb: float | None = None,
    log: str | Path | None = None,
) -> Outcome:
    """Measure ``job`` in its own process into ``out``; a failure becomes a failed record."""
    out = Path(out)
    args = ["measure", "--job", json.dumps(job.to_dict()), "--reference", str(reference)]
    outcome = run_child([*args, "--out", str(out)], mem_cap_mb, log)
    remove_partials(out)
    if not outcome.ok:
        failed_record(job, outcome, out)
    return outcome


def make_reference_file(job: Job, out: str | Path, log: str | Path | None = None) -> Outcome:
    """The reference trace for ``job``'s world and planning depth, in its own process."""
    out = Path(out)
    args = ["reference", "--job", json.dumps(job.to_dict()), "--out", str(out)]
    outcome = run_child(args, log=log)
    remove_partials(out)
    if not outcome.ok:
        raise RuntimeError(f"reference run failed: {outcome.reason}")
    return outcome


def measure(
    job: Job,
    out: str | Path,
    reference: str | Path | None = None,
    mem_cap_mb: float | None = None,
) -> Outcome:
    """Measure ``job`` into ``out`` in a fresh process, computing its reference if not given.

    The reference (float64 dense PyMDP numpy, one agent) runs in a process of its own
    too, so neither figure sees the other's imports.
    """
    if reference is not None:
        return measure_job(job, out, reference, mem_cap_mb)
    with tempfile.TemporaryDirectory(prefix="memsweep-ref-") as scratch:
        path = Path(scratch) / "reference.npz"
        make_reference_file(reference_job(job), path)
        return measure_job(job, out, path, mem_cap_mb)
