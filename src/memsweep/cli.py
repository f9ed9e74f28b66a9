"""The ``memsweep`` command: measure one configuration, calibrate the probes, plan a sweep."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memsweep.plan.jobs import MODEL_SETTINGS, SHARING, Job


class CliError(Exception):
    pass


def _parse_settings(pairs: list[str]) -> dict:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"--set expects key=value, got {pair!r}")
        if key not in MODEL_SETTINGS:
            raise CliError(f"--set: unknown setting {key!r}; allowed: {', '.join(MODEL_SETTINGS)}")
        settings[key] = value
    return settings


AXIS_OPTIONS = ("backend", "storage", "dtype", "grid", "agents", "sharing", "policy_len")


def axes_from_path(path: str) -> dict:
    """The configuration a measurement path names: ``…/backend=lean/…/policy_len=1.parquet``."""
    from memsweep.results.schema import hive_parts

    settings = hive_parts(path)
    stem = Path(path).name.removesuffix(".parquet")
    key, sep, value = stem.partition("=")
    if sep:
        settings[key] = value
    return settings


def job_from_args(args) -> Job:
    settings = {
        axis: getattr(args, axis) for axis in AXIS_OPTIONS if getattr(args, axis) is not None
    }
    if args.from_path:
        settings = {**axes_from_path(args.out), **settings}
    missing = [f"--{axis.replace('_', '-')}" for axis in AXIS_OPTIONS if axis not in settings]
    if missing:
        raise CliError(f"missing {', '.join(missing)} (or --from-path with a Hive-style --out)")
    settings.update(_parse_settings(args.set))
    if args.steps is not None:
        settings["steps"] = args.steps
    if args.repeats is not None:
        settings["repeats"] = args.repeats
    try:
        return Job.from_dict(settings)
    except ValueError as error:
        raise CliError(str(error)) from error


def cmd_measure(args) -> int:
    from memsweep import agents
    from memsweep.harness import supervisor

    job = job_from_args(args)
    try:
        reason = agents.get(job.backend).unsupported_reason(job.agent_spec())
    except agents.UnknownBackend as error:
        raise CliError(str(error)) from error
    if reason:
        raise CliError(
            f"unsupported configuration ({job.backend}, {job.storage}, {job.dtype}): {reason}"
        )
    out = Path(args.out)
    if args.reference is None:
        print("computing the reference trace (float64 dense PyMDP numpy agent)...", file=sys.stderr)
    outcome = supervisor.measure(job, out, args.reference, args.mem_cap_mb)
    status = "ok" if outcome.ok else f"FAILED: {outcome.reason}"
    peak_mb = outcome.peak_rss_bytes / 1e6
    print(f"{out}: {status} ({outcome.seconds:.1f} s, child peak RSS {peak_mb:.0f} MB)")
    return 0


def cmd_calibrate(args) -> int:
    import pandas as pd

    from memsweep.harness import calibration

    try:
        table = calibration.write(Path(args.out), args.sizes_mb)
    except (ValueError, OSError) as error:
        raise CliError(str(error)) from error
    with pd.option_context("display.width", 120):
        shown = table.assign(error_pct=100 * table.error_fraction)
        print(shown.drop(columns="error_fraction").to_string(index=False))
    return 0


def cmd_plan(args) -> int:
    from memsweep.plan import config, sweep

    try:
        planned = sweep.plan(config.load(args.config))
    except config.ConfigError as error:
        raise CliError(str(error)) from error
    print(sweep.summary(planned))
    if args.out:
        out = Path(args.out)
        sweep.write_plan(planned, out)
        print(f"plan written to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from memsweep import agents
    from memsweep.world.storage import DTYPES, FORMATS

    parser = argparse.ArgumentParser(prog="memsweep", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    measure = commands.add_parser(
        "measure",
        help="measure one configuration in a fresh child process into one Parquet file",
        description="Measure one configuration in its own process; write one tidy Parquet file. "
        "A run that fails (exception, memory cap, signal) still writes a file, with status=failed.",
    )
    measure.add_argument("--backend", choices=agents.names(), help="agent implementation")
    measure.add_argument("--storage", choices=FORMATS, help="matrix storage format of A and B")
    measure.add_argument("--dtype", choices=DTYPES, help="floating-point type of the model")
    measure.add_argument("--grid", type=int, help="side G of the G×G grid world (N = G² states)")
    measure.add_argument("--agents", type=int, help="agents alive at once in the process")
    measure.add_argument(
        "--sharing",
        choices=SHARING,
        help="private: a model copy per agent; shared: one model",
    )
    measure.add_argument("--policy-len", type=int, help="planning depth L (5^L policies)")
    measure.add_argument("--steps", type=int, help="steps per repeat (default 20)")
    measure.add_argument("--repeats", type=int, help="repeats of the step loop (default 3)")
    measure.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a model setting: {', '.join(MODEL_SETTINGS)}",
    )
    measure.add_argument(
        "--reference",
        help="reference trace (.npz) to replay; computed in its own process when left out",
    )
    measure.add_argument(
        "--mem-cap-mb",
        type=float,
        help="stop the child when its resident memory passes this many MB",
    )
    measure.add_argument("--out", required=True, help="the Parquet file to write")
    measure.add_argument(
        "--from-path",
        action="store_true",
        help="take the axes the options leave out from --out's Hive-style folders "
        "(…/backend=lean/storage=csr/…/policy_len=1.parquet), as the workflow does",
    )
    measure.set_defaults(handler=cmd_measure)

    calibrate = commands.add_parser(
        "calibrate",
        help="compare every memory probe with allocations of known size on this machine",
    )
    calibrate.add_argument("--out", required=True, help="the Parquet file to write")
    calibrate.add_argument(
        "--sizes-mb", type=int, nargs="+", default=[8, 64, 256], help="allocation sizes (MB)"
    )
    calibrate.set_defaults(handler=cmd_calibrate)

    plan = commands.add_parser(
        "plan",
        help="check a sweep config and print its plan (what runs, what does not, and why)",
        description="Validate CONFIG and print the plan summary without running anything.",
    )
    plan.add_argument("config", help="a sweep config, e.g. config/config.yaml")
    plan.add_argument("--out", help="also write the plan table to this Parquet file")
    plan.set_defaults(handler=cmd_plan)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except CliError as error:
        parser.exit(2, f"memsweep {args.command}: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
