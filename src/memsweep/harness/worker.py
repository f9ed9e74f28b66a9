"""The entry point of a job's own process: ``python -m memsweep.harness.worker``.

Started by :mod:`memsweep.harness.supervisor`, never by hand. It reports its phase in
``--phase-file`` (so a supervisor that stops it can say where), when it raises, the
error in ``--error-file``, and as it ends, its peak resident memory over its whole life
in ``--peak-file`` (so a spike between two of the supervisor's polls still counts
against the memory cap). It dies with its supervisor (``--supervisor-pid``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import traceback
from pathlib import Path

from memsweep.files import atomic

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def job_environment(job) -> dict[str, str | None]:
    """What a job's settings put in its process's environment (None: removed): glibc's
    tunables of its allocator settings (:data:`memsweep.plan.jobs.ALLOCATOR`), none where
    a setting is 0 (glibc's own), whatever the shell that started the sweep holds. glibc
    reads them once, as the allocator starts: only a process's starting environment
    sets them."""
    from memsweep.plan.jobs import ALLOCATOR

    return {
        variable: str(value) if (value := getattr(job, name)) else None
        for name, variable in ALLOCATOR.items()
    }


def check_environment(job, environ=os.environ) -> None:
    """Refuse to measure a job in a process started without its environment: its row's
    allocator settings would not be what the allocator ran with."""
    for name, wanted in job_environment(job).items():
        if environ.get(name) != wanted:
            raise RuntimeError(
                f"the job asks for {name}={wanted or '(unset)'}, this process started with "
                f"{environ.get(name) or '(unset)'}: start it through memsweep's supervisor"
            )


def _vmhwm() -> int:
    """This process's high-water mark of resident memory (bytes) since its last reset."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _is_clear_refs(path) -> bool:
    if not isinstance(path, str | bytes | os.PathLike):
        return False  # a file descriptor
    return os.fsdecode(path).endswith("/clear_refs")


class HighWater:
    """The process's peak resident memory over its whole life, and the phase it was seen in.

    The kernel keeps one high-water mark (VmHWM), and the harness resets it at every
    window (``/proc/self/clear_refs``, :class:`memsweep.harness.probes.KernelPeak`), so
    at exit it holds only the last window's peak. An audit hook reads the mark just
    before each reset, whoever makes it, and every phase change reads it too.
    """

    def __init__(self):
        self.peak, self.peak_phase, self.phase = 0, None, "start"

    def install(self) -> HighWater:
        sys.addaudithook(self._hook)
        return self

    def _hook(self, event: str, args: tuple) -> None:
        if event == "open" and args and _is_clear_refs(args[0]):
            self.read()

    def read(self) -> None:
        try:
            value = _vmhwm()
        except OSError:  # no /proc: nothing to report
            return
        if value > self.peak:
            self.peak, self.peak_phase = value, self.phase

    def enter(self, phase: str) -> None:
        self.read()  # a peak so far belongs to the phase that is ending
        self.phase = phase

    def report(self, path: str | None) -> None:
        self.read()
        if path:
            with atomic(path, durable=False) as temporary:  # scratch: read once, now
                report = {"peak_bytes": self.peak, "phase": self.peak_phase}
                temporary.write_text(json.dumps(report))


def _die_with(supervisor_pid: int | None) -> None:
    """Have the kernel kill this process when its supervisor dies (Linux ``prctl``).

    The worker runs in a session of its own, so a signal to the supervisor's process
    group does not reach it; a supervisor killed outright (SIGKILL, the OOM killer)
    cannot stop it, and it would go on to write a file nobody checked. If the supervisor
    died before this call, exit now.
    """
    if supervisor_pid is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != supervisor_pid:
        os._exit(1)


def _phase_writer(path: str | None, high_water: HighWater):
    def write(phase: str) -> None:
        high_water.enter(phase)
        if path:
            # Atomically: the supervisor polls this file and must never read it empty.
            # Not durable: scratch that no one reads after a crash, and a phase change
            # should not wait for the disk.
            with atomic(path, durable=False) as temporary:
                temporary.write_text(phase)

    return write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memsweep.harness.worker")
    parser.add_argument("task", choices=["measure", "reference"])
    parser.add_argument("--job", required=True, help="the job's settings as JSON")
    parser.add_argument("--reference", help="reference trace (.npz) to replay")
    parser.add_argument("--out", required=True)
    parser.add_argument("--phase-file")
    parser.add_argument("--error-file")
    parser.add_argument("--peak-file")
    parser.add_argument("--supervisor-pid", type=int)
    args = parser.parse_args(argv)
    _die_with(args.supervisor_pid)
    high_water = HighWater().install()
    on_phase = _phase_writer(args.phase_file, high_water)
    try:
        from memsweep.plan.jobs import Job

        job = Job.from_dict(json.loads(args.job))
        check_environment(job)
        if args.task == "reference":
            from memsweep.harness.reference import make_reference

            on_phase("reference")
            make_reference(job.world_settings(), job.policy_len, job.steps).save(args.out)
        else:
            from memsweep.harness.measure import measure
            from memsweep.harness.reference import Reference
            from memsweep.results.schema import write_measurements

            table = measure(job, Reference.load(args.reference), on_phase)
            on_phase("write")
            write_measurements(table, args.out)
    except BaseException as error:  # the supervisor turns this into a failed record
        if args.error_file:
            Path(args.error_file).write_text(
                json.dumps(
                    {
                        "type": type(error).__name__,
                        "message": str(error),
                        "traceback": traceback.format_exc(),
                    }
                )
            )
        traceback.print_exc()
        return 1
    finally:
        high_water.report(args.peak_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
