"""The entry point of a job's own process: ``python -m memsweep.harness.worker``.

Started by :mod:`memsweep.harness.supervisor`, never by hand. It reports its phase in
``--phase-file`` (so a supervisor that stops it can say where) and, when it
raises, the error in ``--error-file``.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from memsweep.files import atomic


def _phase_writer(path: str | None):
    def write(phase: str) -> None:
        if path:
            # Atomically: the supervisor polls this file and must never read it empty.
            with atomic(path) as temporary:
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
    args = parser.parse_args(argv)
    on_phase = _phase_writer(args.phase_file)
    try:
        from memsweep.plan.jobs import Job

        job = Job.from_dict(json.loads(args.job))
        if args.task == "reference":
            from memsweep.harness.reference import make_reference

            on_phase("reference")
            make_reference(job.world(), job.policy_len, job.steps).save(args.out)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
