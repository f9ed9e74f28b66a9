"""Run one job in a fresh child process, under a memory cap; every job yields a record.

The child (:mod:`memsweep.harness.worker`) starts with a clean interpreter, so the
measurement sees none of the caller's imports. The supervisor polls the child's
resident memory (RSS of the child and its descendants: real pages, so JAX's large
virtual reservations do not count, and the child's own high-water mark) and kills it
when it passes the cap. A spike between two polls is caught when the child has exited,
from its peak: the high-water mark the worker reports over its whole life (the harness
resets the kernel's mark at every window) and the kernel's ``ru_maxrss``. Where the
kernel offers a hard limit (a memory cgroup, :mod:`memsweep.harness.limits`), the child
runs inside one set a little above the cap, so a child that allocates faster than the
polls come round is killed by the kernel, and its record says so. Every record says
which of these held it (``cap_enforcement``).

A child that raises, passes its cap or dies by a signal still yields its Parquet file,
with ``status`` = failed and the reason. The child runs in a session of its own: when
SIGTERM, SIGINT or SIGHUP reaches the supervising process, the supervisor kills the
child's whole process group, writes the failed record ("interrupted by SIGTERM"),
removes its temporary folders and only then lets the signal end it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyarrow as pa

from memsweep.files import remove_partials
from memsweep.harness import envs, limits, probes, worker
from memsweep.plan.jobs import Job, reference_job
from memsweep.results.schema import read_file, to_table, write_measurements

POLL_SECONDS = 0.02
PROBE = probes.Supervisor.name
WORKER = [sys.executable, "-m", "memsweep.harness.worker"]
# Signals that ask the supervising process to stop: the child is stopped first.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# A measured process computes on one thread (BLAS, OpenMP, XLA's CPU backend): a job's
# timings then do not depend on what else runs on the machine's other cores, and jobs
# side by side do not oversubscribe them. Memory figures do not depend on it.
SINGLE_THREADED = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def child_environment(**extra: str | None) -> dict[str, str]:
    """The measured child's environment: ours, single-threaded (the user's own XLA flags
    kept after ours, so theirs win), plus ``extra`` (a None removes the variable)."""
    environment = {**os.environ, **SINGLE_THREADED, **extra}
    if os.environ.get("XLA_FLAGS"):
        environment["XLA_FLAGS"] = f"{SINGLE_THREADED['XLA_FLAGS']} {os.environ['XLA_FLAGS']}"
    return {name: value for name, value in environment.items() if value is not None}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str | None
    phase: str | None
    peak_rss_bytes: int
    seconds: float
    enforcement: str | None = None  # what held the cap (the record's cap_enforcement)


class Interrupted(SystemExit):
    """SIGTERM or SIGHUP reached the supervisor, which stopped its child and wrote the record.

    A :class:`SystemExit` (status 128 + the signal's number, as a process killed by it):
    it ends the process quietly, through every ``finally`` (temporary folders), and no
    ``except Exception`` swallows it. SIGINT raises :class:`KeyboardInterrupt` instead.
    """

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


# Stop signals, noted by the handler that the outermost supervising call installs.
_noted: list[int] = []
_handlers_installed = False


def _note(signum, frame) -> None:
    _noted.append(signum)


def _interrupted_by() -> str | None:
    return signal.Signals(_noted[0]).name if _noted else None


def _raise_if_stopped() -> None:
    """Raise what the first stop signal noted asks for (the child is already stopped)."""
    if not _noted:
        return
    if _noted[0] == signal.SIGINT:
        raise KeyboardInterrupt(f"interrupted by {_interrupted_by()}")
    raise Interrupted(_noted[0])


@contextlib.contextmanager
def _stop_signals_noted():
    """While a child runs, a stop signal is noted instead of ending this process at once.

    The supervisor then kills the child's process group, writes its record and, leaving
    the outermost of these blocks, raises (:func:`_raise_if_stopped`). Signal handlers
    belong to the main thread: elsewhere, and for a signal ignored before (``nohup``),
    nothing is installed.
    """
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _note)
    _handlers_installed = True
    try:
        yield
        _raise_if_stopped()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _handlers_installed = False
        _noted.clear()


def _vmhwm(pid: int | str) -> int:
    """A process's high-water mark of resident memory (VmHWM, bytes); 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _poll(process: psutil.Process) -> tuple[int, int]:
    """The resident bytes of the child's tree now, and the child's own high-water mark."""
    tree = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        members = [process]
    for member in members:
        with contextlib.suppress(psutil.Error):
            tree += member.memory_info().rss
    return tree, _vmhwm(process.pid)


def _exited(pid: int) -> bool:
    """Whether the child has ended, without reaping it (its pid, and so its process
    group's id, stays taken until :func:`_stop_and_reap`)."""
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    return os.waitid(os.P_PID, pid, flags) is not None


def _stop_and_reap(child: subprocess.Popen) -> os.struct_rusage:
    """Kill whatever is left of the child's tree (its process group and descendants), then
    reap the child; returns the child's resource usage."""
    try:
        descendants = psutil.Process(child.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)  # its session's group: every process it started
    for member in descendants:  # and any that left the group
        with contextlib.suppress(psutil.Error):
            member.kill()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return usage


def _own_peak_from_rusage(usage: os.struct_rusage, inherited: int) -> int:
    """The child's peak resident bytes from ``ru_maxrss`` (KiB on Linux), where it tells.

    Linux carries the high-water mark of the process that forked the child through
    ``exec`` into ``ru_maxrss`` (a 400 MB supervisor gives a 10 MB child 400 MB), so the
    figure is the child's own only above ``inherited``, this process's mark after the
    child started. Below that, 0: the child's peak is not known from it.
    """
    peak = usage.ru_maxrss * 1024
    return peak if peak > inherited else 0


@dataclass(frozen=True)
class _Files:
    """The files a worker reports through, in the supervisor's scratch folder."""

    folder: Path

    @property
    def phase(self) -> Path:
        return self.folder / "phase"

    @property
    def error(self) -> Path:
        return self.folder / "error.json"

    @property
    def peak(self) -> Path:
        return self.folder / "peak.json"

    @property
    def log(self) -> Path:
        return self.folder / "log"

    def arguments(self) -> list[str]:
        return [
            *("--phase-file", str(self.phase)),
            *("--error-file", str(self.error)),
            *("--peak-file", str(self.peak)),
            *("--supervisor-pid", str(os.getpid())),
        ]

    def last_phase(self) -> str | None:
        return self.phase.read_text() if self.phase.exists() else None

    def reported_peak(self) -> tuple[int, str | None]:
        """The peak the worker reported as it ended (bytes, phase), or (0, None)."""
        try:
            report = json.loads(self.peak.read_text())
            return int(report["peak_bytes"]), report.get("phase")
        except (OSError, ValueError, KeyError, TypeError):
            return 0, None


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
    args: list[str],
    mem_cap_mb: float | None = None,
    log: str | Path | None = None,
    program: list[str] | None = None,
    environment: dict[str, str | None] | None = None,
) -> Outcome:
    """Run ``python -m memsweep.harness.worker ARGS`` and watch it.

    The child's output goes to ``log`` (with a closing line saying how it ended), or to
    this process's stderr when no log is given. ``program`` replaces the worker's command
    (another PyMDP release's interpreter, a test's stand-in); it is given the same
    reporting options after ``ARGS``. ``environment``: variables the child's environment
    sets (None: removes), e.g. a job's (:func:`memsweep.harness.worker.job_environment`).
    """
    with (
        _stop_signals_noted(),
        tempfile.TemporaryDirectory(prefix="memsweep-") as scratch,
    ):
        files = _Files(Path(scratch))
        command = [*(program or WORKER), *args, *files.arguments()]
        outcome = _watch(command, mem_cap_mb, files, environment or {})
        output = files.log.read_text(errors="replace") if files.log.exists() else ""
        output += f"memsweep supervisor: {_describe(outcome)}\n"
        if log is None:
            sys.stderr.write(output)
        else:
            Path(log).parent.mkdir(parents=True, exist_ok=True)
            Path(log).write_text(output)
    return outcome


def _enforcement(limit, mem_cap_mb: float | None) -> str:
    """What holds a job to its cap, in words, for the record's ``cap_enforcement``."""
    if mem_cap_mb is None:
        return "no memory cap"
    checks = f"polls every {POLL_SECONDS * 1000:g} ms, post-exit peak"
    if isinstance(limit, limits.HardLimit):
        return f"{limit.describe()}, {checks}"
    return f"{checks} (no hard limit: {limit.reason})"


def _watch(
    command: list[str], mem_cap_mb: float | None, files: _Files, environment: dict
) -> Outcome:
    started = time.perf_counter()
    if _noted:  # stopped before this child started: start nothing
        reason = f"interrupted by {_interrupted_by()}"
        return Outcome(False, reason, None, 0, time.perf_counter() - started)
    if mem_cap_mb is None:
        limit = limits.NoLimit("no memory cap")
    else:  # the kernel's limit, a little above the cap: the polls usually stop it first
        limit = limits.create(limits.with_margin(mem_cap_mb * 1e6))
    try:
        return _watch_child(command, mem_cap_mb, files, limit, started, environment)
    finally:
        limit.remove()  # the child and its tree are reaped or killed by now


def _watch_child(
    command, mem_cap_mb, files: _Files, limit, started: float, environment: dict
) -> Outcome:
    cap = None if mem_cap_mb is None else mem_cap_mb * 1e6
    enforcement = _enforcement(limit, mem_cap_mb)
    with open(files.log, "wb") as log:
        child = subprocess.Popen(
            limit.command(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_environment(**environment, **{limits.RECORD_VARIABLE: enforcement}),
        )
    tree_peak = own_peak = inherited = 0
    over_cap_at = None
    try:
        inherited = _vmhwm("self")  # what ru_maxrss inherits (_own_peak_from_rusage)
        process = psutil.Process(child.pid)
        while not _exited(child.pid) and not _noted:
            tree, own = _poll(process)
            tree_peak, own_peak = max(tree_peak, tree), max(own_peak, own)
            if cap is not None and max(tree, own) > cap:
                over_cap_at = files.last_phase() or "start"
                break
            time.sleep(POLL_SECONDS)
    finally:
        usage = _stop_and_reap(child)
    seconds = time.perf_counter() - started

    def outcome(ok: bool, reason: str | None, phase: str | None, peak: int) -> Outcome:
        return Outcome(ok, reason, phase, peak, seconds, enforcement)

    phase = files.last_phase()
    if over_cap_at is not None:
        peak = max(tree_peak, own_peak)
        reason = (
            f"exceeded memory cap of {mem_cap_mb:g} MB at phase {over_cap_at} "
            f"(peak resident {peak / 1e6:.0f} MB when stopped)"
        )
        return outcome(False, reason, over_cap_at, peak)
    if _noted:
        reason = f"interrupted by {_interrupted_by()}"
        return outcome(False, reason, phase, max(tree_peak, own_peak))
    # A spike between two polls: the child's peak over its whole life, now that it ended.
    reported, reported_phase = files.reported_peak()
    from_rusage = _own_peak_from_rusage(usage, inherited)
    peak = max(tree_peak, own_peak, reported, from_rusage)
    if limit.oom_kills():  # faster than the polls: the kernel stopped it at its limit
        reason = (
            f"exceeded memory cap of {mem_cap_mb:g} MB at phase {phase or 'start'}: "
            f"killed by the kernel's hard limit of {limit.limit_bytes / 1e6:.0f} MB "
            f"(cgroup v{limit.version} {limit.settings[0][0]}, the cap plus a margin; "
            f"peak resident {peak / 1e6:.0f} MB)"
        )
        return outcome(False, reason, phase, peak)
    if cap is not None and peak > cap:
        source = "reported by the child" if reported >= from_rusage else "ru_maxrss of the child"
        at = reported_phase if reported >= from_rusage and reported_phase else phase
        reason = (
            f"exceeded memory cap of {mem_cap_mb:g} MB at phase {at or 'start'} "
            f"(peak resident {peak / 1e6:.0f} MB, {source} after it exited: "
            "a spike between two polls)"
        )
        return outcome(False, reason, at, peak)
    if child.returncode != 0:
        reason = _reason_from_exit(child.returncode, files.error, files.log)
        return outcome(False, reason, phase, peak)
    return outcome(True, None, phase, peak)


def failed_record(job: Job, outcome: Outcome, out: str | Path) -> Path:
    """The Parquet record of a job that did not finish: what happened, and where."""
    from memsweep.harness.measure import provenance

    row = {
        **job.columns(),
        **provenance(job.backend, job.pymdp_version),  # the release its child ran on
        "cap_enforcement": outcome.enforcement,
        "phase": "failure",
        "operation": outcome.phase or "start",
        "metric": "child_peak_rss_bytes",
        "probe": PROBE,
        "value": float(outcome.peak_rss_bytes),
        "unit": "B",
        "status": "failed",
        "reason": outcome.reason,
        "repeat": None,  # tied to no repeat and no step
        "step": None,
    }
    return write_measurements(to_table([row]), out)


def record_job_peak(outcome: Outcome, out: str | Path) -> Path:
    """Add to a finished job's file its process's peak over its whole life.

    The summary's ``total_peak_bytes`` is the configuration's: from the baseline to the
    end of its steps. The process also rebuilds the model under tracemalloc for the
    allocation sites and writes its rows; what a memory cap or a scheduler sees is this
    lifetime peak (``job_peak_bytes``, probe ``supervisor``: the highest of the polls,
    the child's own high-water mark and ``ru_maxrss``), which only the supervisor knows
    once the child has exited.
    """
    table = read_file(out)
    row = {
        **table.slice(0, 1).to_pylist()[0],  # its configuration and provenance
        "phase": "summary",
        "operation": "all",
        "metric": "job_peak_bytes",
        "probe": PROBE,
        "value": float(outcome.peak_rss_bytes),
        "unit": "B",
        "status": "ok",
        "reason": None,
        "site": None,
        "repeat": None,
        "step": None,
    }
    return write_measurements(pa.concat_tables([table, to_table([row])]), out)


def measure_job(
    job: Job,
    out: str | Path,
    reference: str | Path,
    mem_cap_mb: float | None = None,
    log: str | Path | None = None,
) -> Outcome:
    """Measure ``job`` in its own process into ``out``; a failure becomes a failed record.

    The process runs the interpreter of the job's PyMDP release (memsweep's own for the
    pinned one; see :mod:`memsweep.harness.envs`, which builds another's first if needed).
    """
    out = Path(out)
    args = ["measure", "--job", json.dumps(job.to_dict()), "--reference", str(reference)]
    program = None  # WORKER: memsweep's own interpreter, for the pinned release
    if job.pymdp_version != envs.PYMDP_PINNED:
        try:
            program = [str(envs.ensure(job.pymdp_version)), *WORKER[1:]]
        except (RuntimeError, OSError, ValueError) as error:
            reason = f"no environment for PyMDP {job.pymdp_version}: {error}"
            failed = Outcome(False, reason, "environment", 0, 0.0)
            failed_record(job, failed, out)
            return failed
    with _stop_signals_noted():
        outcome = run_child(
            [*args, "--out", str(out)], mem_cap_mb, log, program, worker.job_environment(job)
        )
        remove_partials(out)
        if outcome.ok:
            record_job_peak(outcome, out)
        else:
            failed_record(job, outcome, out)
        _raise_if_stopped()
    return outcome


def make_reference_file(job: Job, out: str | Path, log: str | Path | None = None) -> Outcome:
    """The reference trace for ``job``'s world and planning depth, in its own process."""
    out = Path(out)
    args = ["reference", "--job", json.dumps(job.to_dict()), "--out", str(out)]
    with _stop_signals_noted():
        outcome = run_child(args, log=log, environment=worker.job_environment(job))
        remove_partials(out)
        _raise_if_stopped()
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
    with (
        _stop_signals_noted(),
        tempfile.TemporaryDirectory(prefix="memsweep-ref-") as scratch,
    ):
        path = Path(scratch) / "reference.npz"
        make_reference_file(reference_job(job), path)
        return measure_job(job, out, path, mem_cap_mb)
