"""The ``memsweep`` command: measure one configuration, calibrate the probes, plan a sweep.

``measure`` has one option per setting of :class:`memsweep.plan.jobs.Job`, made from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memsweep.plan import jobs
from memsweep.plan.jobs import CORE_AXES, MODEL_SETTINGS, Job


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


def axes_from_path(path: str) -> dict:
    """The configuration a measurement path names: ``…/backend=lean/…/policy_len=1.parquet``."""
    from memsweep.results.schema import hive_parts

    settings = hive_parts(path)
    stem = Path(path).name.removesuffix(".parquet")
    key, sep, value = stem.partition("=")
    if sep:
        settings[key] = value
    return settings


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def job_from_args(args) -> Job:
    """The job the options name: from --out's folders (--from-path), then --set, then the
    setting's own option, each winning over the one before."""
    settings = axes_from_path(args.out) if args.from_path else {}
    settings.update(_parse_settings(args.set))
    options = {name: getattr(args, name) for name in jobs.SETTINGS}
    settings.update({name: value for name, value in options.items() if value is not None})
    missing = [_option(axis) for axis in CORE_AXES if axis not in settings]
    if missing:
        raise CliError(f"missing {', '.join(missing)} (or --from-path with a Hive-style --out)")
    try:
        return Job.from_dict(settings)
    except ValueError as error:
        raise CliError(str(error)) from error


def cmd_measure(args) -> int:
    from memsweep.harness import supervisor

    job = job_from_args(args)
    reason = jobs.unsupported_reason(job)
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


def cmd_schema(args) -> int:
    import json

    from memsweep.plan import config

    print(json.dumps(config.schema(), indent=2))
    return 0


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """One option per Job setting: its type, its choices and its help, from the Job."""
    for name, setting in jobs.SETTINGS.items():
        text = setting.metadata["help"]
        if name in MODEL_SETTINGS:
            text += f" (default {setting.default})"
        kind = jobs.TYPES[name]
        parser.add_argument(_option(name), type=kind, choices=jobs.choices(name), help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memsweep", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    measure = commands.add_parser(
        "measure",
        help="measure one configuration in a fresh child process into one Parquet file",
        description="Measure one configuration in its own process; write one tidy Parquet file. "
        "A run that fails (exception, memory cap, signal) still writes a file, with status=failed.",
    )
    _add_settings(measure)
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

    schema = commands.add_parser(
        "schema",
        help="print the JSON schema a sweep config is checked against (made from the code)",
    )
    schema.set_defaults(handler=cmd_schema)
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
