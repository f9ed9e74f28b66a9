"""The ``memsweep`` command: measure one configuration, profile it under memray, calibrate the
probes, plan a sweep.

``measure`` has one option per setting of :class:`memsweep.plan.jobs.Job`, made from it:
its type, its choices or bounds and its help, so ``--help``, the errors and the config
schema say the same. Every path and value is checked before anything is measured; a
mistake is one line on stderr and exit status 2 (``--debug`` adds the traceback).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

from memsweep.harness.calibration import (
    DEFAULT_SIZES_KB,
    LIMITS,
    REPEAT_BOUNDS,
    REPEATS,
    SIZE_BOUNDS,
    TOLERANCE,
    size_text,
)
from memsweep.plan import jobs
from memsweep.plan.config import BUDGET, bounds_of, bounds_text, words
from memsweep.plan.jobs import CORE_AXES, MODEL_SETTINGS, Job
from memsweep.world.checks import Checks

# Exit statuses, stated once (the epilog of every command lists them).
OK = 0
ERROR = 1  # memsweep itself failed (a bug, or the reference run failed): nothing written
USAGE = 2  # a mistake in the command, its paths or its config: nothing run, nothing written
MEASUREMENT_FAILED = 3  # it ran and wrote its file, but the file records a failure
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as a shell reports it)

EXIT_STATUS = {
    OK: "done",
    USAGE: "a mistake in the command, a path or the config: nothing was run or written",
    MEASUREMENT_FAILED: None,  # each command says what it means for it
    ERROR: "memsweep itself failed (run again with --debug for the traceback)",
    INTERRUPTED: "interrupted (Ctrl-C)",
}


class CliError(Exception):
    """A user's mistake: one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (``memsweep measure: error: …``)."""

    def error(self, message: str):
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help text wrapped between words only: ``pymdp-numpy`` is never cut at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _epilog(failed: str | None) -> str:
    meanings = {**EXIT_STATUS, MEASUREMENT_FAILED: failed}
    lines = [f"  {code:>3}  {text}" for code, text in sorted(meanings.items()) if text]
    return "exit status:\n" + "\n".join(lines)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _checked(kind: type, bounds: dict[str, float]):
    """An argparse ``type``: the value as ``kind``, refused outside ``bounds`` in the words
    every error uses (``must be at least 2, got 1``)."""
    checks = Checks({"value": bounds})
    noun = {int: "an integer", float: "a number", str: "a name"}[kind]

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        failure = checks.failure("value", value)
        if failure:
            raise argparse.ArgumentTypeError(f"must be {failure}, got {text}")
        return value

    convert.__name__ = kind.__name__
    convert.words = words(bounds)
    return convert


# Paths ----------------------------------------------------------------------------------
def check_out(path: str, option: str = "--out") -> Path:
    """A ``.parquet`` file to write: its folder made (if need be) and proved writable."""
    out = Path(path)
    if out.suffix != ".parquet":
        raise CliError(f"{option} {path}: must end in .parquet (one Parquet file is written)")
    if out.is_dir():
        raise CliError(f"{option} {path}: is a folder; name the .parquet file to write")
    folder = out.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # The real test of writing: a file made and removed (os.access says yes to root
        # on a read-only file system).
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{out.name}.check"):
            pass
    except (FileExistsError, NotADirectoryError):
        reason = "a file is in the way"
        raise CliError(f"{option} {path}: cannot make folder {folder}: {reason}") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise CliError(f"{option} {path}: cannot write in folder {folder}: {reason}") from None
    return out


def check_reference(path: str, job: Job) -> Path:
    """A readable reference trace made for ``job``'s world, depth and steps."""
    from memsweep.harness.reference import Reference

    reference = Path(path)
    if not reference.exists():
        raise CliError(f"--reference {path}: no such file")
    if not reference.is_file():
        raise CliError(f"--reference {path}: is not a file")
    try:
        loaded = Reference.load(reference)
    except Exception as error:  # numpy raises many kinds for a file that is not its own
        reason = f"{type(error).__name__}: {error}"
        raise CliError(f"--reference {path}: not a readable reference trace ({reason})") from None
    try:
        loaded.check_matches(job.world_settings(), job.policy_len, job.steps)
    except ValueError as error:
        differences = "; ".join(_differences(loaded, job) or [str(error)])
        raise CliError(f"--reference {path}: made for another job: {differences}") from None
    return reference


def _differences(reference, job: Job) -> list[str]:
    """What a reference was made for that ``job`` is not: ``grid 5 (this job: 3)``."""
    made, wanted = reference.world.as_dict(), job.world_settings().as_dict()
    found = [f"{k} {made[k]} (this job: {wanted.get(k)})" for k in made if made[k] != wanted.get(k)]
    if reference.policy_len != job.policy_len:
        found.append(f"policy_len {reference.policy_len} (this job: {job.policy_len})")
    if reference.steps < job.steps:
        found.append(f"only {reference.steps} steps (this job: {job.steps})")
    return found


# Settings --------------------------------------------------------------------------------
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


def job_from_args(args, path: str | None = None) -> Job:
    """The job the options name: from the folders of ``path`` (--out's with --from-path),
    then --set, then the setting's own option, each winning over the one before."""
    from memsweep.results.schema import path_parts

    if path is None and args.from_path is True:
        path = args.out
    settings = path_parts(path) if path else {}
    settings.update(_parse_settings(args.set))
    options = {name: getattr(args, name) for name in jobs.SETTINGS}
    settings.update({name: value for name, value in options.items() if value is not None})
    missing = [_option(axis) for axis in CORE_AXES if axis not in settings]
    if missing:
        raise CliError(f"missing {', '.join(missing)} (or --from-path with a Hive-style --out)")
    try:
        return Job.from_dict(settings)
    except ValueError as error:
        raise CliError(str(error)) from None


# Commands -------------------------------------------------------------------------------
def checked_job(args, path: str | None = None) -> tuple[Job, Path | None, Path]:
    """The job a measuring command names, supported, with its --reference (None: computed
    in its own process) and --out checked before anything runs."""
    job = job_from_args(args, path)
    reason = jobs.unsupported_reason(job)
    if reason:
        raise CliError(
            f"unsupported configuration ({job.backend}, {job.storage}, {job.dtype}): {reason}"
        )
    reference = check_reference(args.reference, job) if args.reference is not None else None
    return job, reference, check_out(args.out)


def cmd_measure(args) -> int:
    job, reference, out = checked_job(args)

    from memsweep.harness import retry, supervisor

    if reference is None:
        print("computing the reference trace (float64 dense PyMDP numpy agent)...", file=sys.stderr)
    # A job the cap stopped keeps a sidecar: the workflow reruns it only under a cap above
    # its peak (memsweep.harness.retry). Read before the run, which replaces --out.
    before = retry.read(out)
    outcome = supervisor.measure(job, out, reference, args.mem_cap_mb)
    retry.record(out, args.mem_cap_mb, before, outcome.reason, outcome.peak_rss_bytes)
    status = "ok" if outcome.ok else f"FAILED: {outcome.reason}"
    peak_mb = outcome.peak_rss_bytes / 1e6
    print(f"{out}: {status} ({outcome.seconds:.1f} s, child peak RSS {peak_mb:.0f} MB)")
    return OK if outcome.ok else MEASUREMENT_FAILED


def cmd_profile(args) -> int:
    job, reference, out = checked_job(args, args.from_path)
    flamegraph = Path(args.flamegraph) if args.flamegraph else out.with_suffix(".html")
    if flamegraph.suffix != ".html":
        raise CliError(f"--flamegraph {flamegraph}: must end in .html")

    from memsweep.harness import profile

    outcome = profile.profile(job, out, flamegraph, reference, args.mem_cap_mb)
    status = "ok" if outcome.ok else f"FAILED: {outcome.reason}"
    print(f"{out}, {flamegraph}: {status} ({outcome.seconds:.1f} s)")
    return OK if outcome.ok else MEASUREMENT_FAILED


def cmd_calibrate(args) -> int:
    out = check_out(args.out)

    import pandas as pd

    from memsweep.harness import calibration

    table = calibration.write(out, args.sizes_kb, args.repeats)
    with pd.option_context("display.width", 160):
        shown = table.assign(error_pct=100 * table.error_fraction)
        print(shown.drop(columns="error_fraction").to_string(index=False))
    verdicts = calibration.verdicts(table)
    for verdict in verdicts:
        print(verdict.line())
    print(f"{out}: written")
    return OK if all(v.passed for v in verdicts) else MEASUREMENT_FAILED


def cmd_plan(args) -> int:
    from memsweep.plan import config, predict, sweep

    try:
        planned = sweep.plan(config.load(args.config), predict.load_predictor())
    except config.ConfigError as error:
        raise CliError(str(error)) from None
    out = check_out(args.out) if args.out else None  # after the config: no folder made for it
    print(sweep.summary(planned))
    here = Path.cwd() / "results"
    print(f"  snakemake started here writes them to {here} (elsewhere: --directory FOLDER)")
    if out:
        sweep.write_plan(planned, out)
        print(f"plan written to {out}")
    return OK


def cmd_prune(args) -> int:
    from memsweep.plan import config, predict, sweep
    from memsweep.results import prune

    try:
        planned = sweep.plan(config.load(args.config), predict.load_predictor())
    except config.ConfigError as error:
        raise CliError(str(error)) from None
    stale = prune.stale_files(args.directory, planned)
    where = Path(args.directory) / sweep.MEASUREMENTS
    if not stale:
        print(f"{where}: every measurement file belongs to the sweep of {args.config}")
        return OK
    for path in stale:
        print(path)
    if not args.delete:
        print(f"{len(stale)} measurement file(s) in {where} that {args.config} does not plan; "
              "the report and results/measurements.parquet leave them out already "
              "(--delete removes them)")  # fmt: skip
        return OK
    removed = prune.remove(stale, args.directory)
    print(f"removed {len(stale)} measurement file(s) ({removed} paths with their sidecars)")
    return OK


def cmd_predict(args) -> int:
    from memsweep.plan import forecast

    options = {name: getattr(args, name) for name in jobs.SETTINGS}
    try:
        print(forecast.text(options, args.predictor, args.fit_in))
    except ValueError as error:
        raise CliError(str(error)) from None
    return OK


def cmd_schema(args) -> int:
    import json

    from memsweep.plan import config

    print(json.dumps(config.schema(), indent=2))
    return OK


# Comparing sets ---------------------------------------------------------------------------
REGRESSED = 1  # compare --fail-on-regression: a figure regressed


def _resolution(sets) -> tuple[dict[str, float] | None, str]:
    """Each probe's resolution from the calibrations found beside the sets (the larger
    where two disagree), and where it came from; (None, "") where none was found."""
    import pandas as pd

    from memsweep.harness.calibration import resolution

    paths = sorted({str(s.calibration) for s in sets if s.calibration is not None})
    if not paths:
        return None, ""
    found: dict[str, float] = {}
    for path in paths:
        try:
            calibrated = resolution(pd.read_parquet(path))
        except (OSError, ValueError, KeyError) as error:
            raise CliError(f"{path}: not a readable calibration ({error})") from None
        for probe, size in calibrated.items():
            found[probe] = max(size, found.get(probe, 0.0))
    return found, " and ".join(paths)


def cmd_compare(args) -> int:
    from memsweep.results import compare, compare_render

    threshold = args.threshold / 100
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: is a file; name a folder")
    try:
        if args.axis:
            if args.new is not None:
                raise CliError("--axis compares two values within ONE set: give BASE only")
            axis, sep, values = args.axis.partition("=")
            if not sep:
                raise CliError(f"--axis expects AXIS=BASE,NEW, got {args.axis!r}")
            base, new = compare.split(
                compare.load(args.base, args.results), axis, values.split(",")
            )
        else:
            if args.new is None:
                raise CliError("give BASE and NEW, or one set and --axis AXIS=BASE,NEW")
            axis = None
            base, new = compare.load(args.base, args.results), compare.load(args.new, args.results)
        resolution, source = _resolution((base, new))
        result = compare.compare(base, new, axis, threshold, resolution, source)
    except compare.CompareError as error:
        raise CliError(str(error)) from None
    written = compare_render.write(result, out)
    print(compare_render.summary(result, written))
    regressed = result.counts()[compare.REGRESSED]
    return REGRESSED if regressed and args.fail_on_regression else OK


def cmd_baseline(args) -> int:
    from memsweep.results import baselines

    if args.action == "list":
        found = baselines.listed(args.results)
        for described in found:
            versions = ", ".join(described.get("pymdp_version") or []) or "unknown"
            print(
                f"{described['name']}: {described.get('configurations', '?')} configurations, "
                f"PyMDP {versions}, saved {described.get('saved_at', '?')} ({described['path']})"
            )
        if not found:
            print(f"no baselines in {Path(args.results) / baselines.FOLDER}")
        return OK
    try:
        path = baselines.save(args.name, args.results, args.force)
    except baselines.BaselineError as error:
        raise CliError(str(error)) from None
    print(f"baseline {args.name}: saved to {path}")
    return OK


# The parser -------------------------------------------------------------------------------
def _add_settings(parser: argparse.ArgumentParser, model_settings: bool = False) -> None:
    """One option per Job setting: its type, its choices or bounds, and its help, from the
    Job (the same words as the errors and config/README.md); with ``model_settings``, also
    ``--set KEY=VALUE`` for the model settings (:func:`job_from_args` reads both)."""
    for name, setting in jobs.SETTINGS.items():
        text = f"{setting.metadata['help']}; {bounds_text(name)}"
        if name in MODEL_SETTINGS:
            text += f" (default {setting.default})"
        kind = jobs.TYPES[name]
        options = {"choices": jobs.choices(name), "metavar": name.upper(), "help": text}
        if options["choices"] is None:
            options["type"] = _checked(kind, jobs.bounds(name))
        parser.add_argument(_option(name), **options)
    if model_settings:
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"a model setting: {', '.join(MODEL_SETTINGS)}",
        )


def build_parser() -> argparse.ArgumentParser:
    debug = _Parser(add_help=False)
    debug.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error",
    )
    parser = _Parser(
        prog="memsweep",
        description="Measure where PyMDP agents spend memory: one configuration (measure), "
        "its allocation sites under memray (profile), the probes (calibrate), a sweep's plan "
        "(plan). See memsweep COMMAND --help.",
        epilog=_epilog(None),
        formatter_class=_Formatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str, failed: str | None = None):
        return commands.add_parser(
            name,
            help=help,
            description=description,
            epilog=_epilog(failed),
            parents=[debug],
            formatter_class=_Formatter,
        )

    measure = command(
        "measure",
        "measure one configuration in a fresh child process into one Parquet file",
        "Measure one configuration in its own process; write one tidy Parquet file.\n"
        "A run that fails (exception, memory cap, signal) still writes its file, with\n"
        f"status=failed and the reason, and exits with status {MEASUREMENT_FAILED}. The "
        "arguments, --reference\n"
        "and --out's folder are checked before anything runs.",
        failed="the measurement failed; --out holds its failed record (status=failed, reason)",
    )
    _add_settings(measure, model_settings=True)
    measure.add_argument(
        "--reference",
        metavar="NPZ",
        help="reference trace (.npz, from the workflow's reference rule) for this job's world, "
        "depth and at least its steps; computed in its own process when left out",
    )
    cap = _checked(float, bounds_of(BUDGET["max_job_mb"]))
    measure.add_argument(
        "--mem-cap-mb",
        type=cap,
        metavar="MB",
        help="stop the child when its resident memory passes this many MB "
        f"(budget.max_job_mb in a sweep); a number, {cap.words}. A run it stops leaves "
        "the peak it reached in .NAME.cap.json beside --out, so that a sweep reruns it "
        "only under a cap above that peak",
    )
    measure.add_argument(
        "--out", required=True, metavar="FILE.parquet", help="the Parquet file to write"
    )
    measure.add_argument(
        "--from-path",
        action="store_true",
        help="take the axes the options leave out from --out's Hive-style folders "
        "(…/backend=lean/storage=csr/…/policy_len=1.parquet), as the workflow does",
    )
    measure.set_defaults(handler=cmd_measure)

    profile = command(
        "profile",
        "profile one configuration under memray: the sites alive at its heap's peak",
        "Run one configuration's measurement again under memray (native frames on, from\n"
        "the post-import baseline to the end of the steps, in a fresh child under the\n"
        "memory cap) and write the sites alive at the heap's high-water mark as rows\n"
        "(phase profile, probe memray) to --out, and memray's flame graph to --flamegraph.",
        failed="the profile failed; --out holds its failed record (status=failed, reason)",
    )
    _add_settings(profile, model_settings=True)
    profile.add_argument(
        "--from-path",
        metavar="PATH",
        help="take the axes the options leave out from PATH's Hive-style folders (the "
        "configuration's measurement, …/backend=lean/…/policy_len=1.parquet)",
    )
    profile.add_argument(
        "--reference",
        metavar="NPZ",
        help="reference trace (.npz) for this job; computed in its own process when left out",
    )
    profile.add_argument(
        "--mem-cap-mb", type=cap, metavar="MB", help="stop the profiled child past this many MB"
    )
    profile.add_argument(
        "--out", required=True, metavar="FILE.parquet", help="the Parquet file of its rows"
    )
    profile.add_argument(
        "--flamegraph", metavar="FILE.html", help="memray's flame graph (default: --out, .html)"
    )
    profile.set_defaults(handler=cmd_profile)

    calibrate = command(
        "calibrate",
        "compare every memory probe with allocations of known size on this machine",
        "Allocate and touch arrays of known size, each size in fresh processes (--repeats\n"
        "of them, the median kept), kept (a level) and freed (a peak), and compare every\n"
        "memory probe's reading with the truth; write the table (probe, reading,\n"
        "requested_bytes, measured_bytes, error_fraction, repeats, spread_bytes,\n"
        "resolution_bytes) to --out, print it, and end with one PASS/FAIL line per probe:\n"
        "its worst error against the limit stated in memsweep/harness/calibration.py:\n"
        + ",\n".join(
            f"  {name} {100 * limit.fraction:g} % from {size_text(limit.from_bytes)}"
            for name, limit in LIMITS.items()
        )
        + ";\nand its resolution: the smallest size it measures within "
        f"±{100 * TOLERANCE:g} % (and every larger\none), below which the report marks its "
        "figures instead of using them.",
        failed="a probe is outside its limit (the table is written all the same)",
    )
    calibrate.add_argument(
        "--out", required=True, metavar="FILE.parquet", help="the Parquet file to write"
    )
    size = _checked(int, SIZE_BOUNDS)
    calibrate.add_argument(
        "--sizes-kb",
        type=size,
        nargs="+",
        default=list(DEFAULT_SIZES_KB),
        metavar="KB",
        help=f"allocation sizes in KB (1000 bytes), integers {size.words} "
        f"(default {' '.join(map(str, DEFAULT_SIZES_KB))})",
    )
    repeats = _checked(int, REPEAT_BOUNDS)
    calibrate.add_argument(
        "--repeats",
        type=repeats,
        default=REPEATS,
        metavar="N",
        help=f"fresh processes per size, integer {repeats.words} (default {REPEATS})",
    )
    calibrate.set_defaults(handler=cmd_calibrate)

    plan = command(
        "plan",
        "check a sweep config and print its plan (what runs, what does not, and why)",
        "Validate CONFIG and print, without running anything: each axis and its values,\n"
        "the model settings, the jobs by status and backend, the predicted memory and\n"
        "where the results will go.",
    )
    plan.add_argument("config", help="a sweep config, e.g. config/config.yaml")
    plan.add_argument(
        "--out", metavar="FILE.parquet", help="also write the plan table to this Parquet file"
    )
    plan.set_defaults(handler=cmd_plan)

    prune = command(
        "prune",
        "list (or remove) measurement files that the current sweep does not plan",
        "The measurement tree keeps every file measured in its folder, also of values a\n"
        "later config dropped (adding them back then reruns nothing). The report and\n"
        "results/measurements.parquet hold the current sweep's only; a reader of the tree\n"
        "sees every file. List the files CONFIG does not plan; --delete removes them.",
    )
    prune.add_argument("config", nargs="?", default="config/config.yaml",
                       help="the sweep config (default config/config.yaml)")  # fmt: skip
    prune.add_argument("--directory", default=".", metavar="FOLDER",
                       help="the folder the sweep ran in (default: here)")  # fmt: skip
    prune.add_argument("--delete", action="store_true", help="remove the files listed")
    prune.set_defaults(handler=cmd_prune)

    predict = command(
        "predict",
        "predict a configuration's peak memory and its parts, measured or not",
        "The predicted peak resident memory of a configuration and its parts, with their\n"
        "95 % intervals, from the sweep's fitted predictor (the analytic formula without\n"
        "one); with --fit-in, the largest grid and agent count that fit in that memory.",
    )
    _add_settings(predict)
    predict.add_argument("--predictor", metavar="JSON", help="a fitted predictor (default "
                         "results/model/predictor.json, else the analytic formula)")  # fmt: skip
    predict.add_argument("--fit-in", metavar="SIZE", help="also the largest grid (at --agents) "
                         "and agent count (at --grid) that fit in SIZE, e.g. 16GB")  # fmt: skip
    predict.set_defaults(handler=cmd_predict)

    schema = command(
        "schema",
        "print the JSON schema a sweep config is checked against (made from the code)",
        "Print the JSON schema a sweep config is checked against (made from the code).",
    )
    schema.set_defaults(handler=cmd_schema)

    compare = command(
        "compare",
        "compare two measurement sets: what improved, what regressed, what did not change",
        "Compare BASE with NEW configuration by configuration (matched on every setting\n"
        "but the compared axis): memory beyond the probe's resolution and --threshold of\n"
        "BASE; time by a Mann-Whitney U test (p < 0.01) and the ratio of medians beyond\n"
        "--threshold; precision by any change of action agreement or a maximum error moved\n"
        "more than x10. A set is a results folder, a .parquet file or a baseline's name.\n"
        "Writes compare.{md,html,csv,png} to --out; with --fail-on-regression, exit\n"
        f"status {REGRESSED} means a figure regressed.",
    )
    compare.add_argument("base", metavar="BASE", help="a results folder, .parquet or baseline")
    compare.add_argument("new", metavar="NEW", nargs="?", help="the same kinds (not with --axis)")
    compare.add_argument(
        "--axis",
        metavar="AXIS=BASE,NEW",
        help="compare two values of one column within BASE, e.g. pymdp_version=1.0.0,1.0.4",
    )
    percent = _checked(float, {"minimum": 0})
    compare.add_argument(
        "--threshold",
        type=percent,
        default=5.0,
        metavar="PCT",
        help=f"the smallest change that counts, in percent of BASE, {percent.words} (default 5)",
    )
    compare.add_argument(
        "--out", default="results/compare", metavar="FOLDER", help="(default results/compare)"
    )
    compare.add_argument(
        "--results", default="results", metavar="FOLDER", help="where baselines are saved"
    )
    compare.add_argument(
        "--fail-on-regression",
        action="store_true",
        help=f"exit with status {REGRESSED} when any figure regressed",
    )
    compare.epilog += f"\n  {REGRESSED:>3}  with --fail-on-regression: a figure regressed"
    compare.set_defaults(handler=cmd_compare)

    baseline = command(
        "baseline",
        "save the current measurements as a named baseline, or list the saved ones",
        "save NAME: copy RESULTS/measurements.parquet (and calibration.parquet) with its\n"
        "provenance to RESULTS/baselines/NAME/, which compare accepts as a set;\n"
        "list: the saved baselines.",
    )
    actions = baseline.add_subparsers(dest="action", required=True, metavar="ACTION")
    save = actions.add_parser(
        "save",
        help="save a baseline",
        description="Copy RESULTS/measurements.parquet, calibration.parquet (if any) and a\n"
        "provenance.json (versions, dates, code digests) to RESULTS/baselines/NAME/;\n"
        "an existing NAME is refused unless --force.",
        parents=[debug],
        formatter_class=_Formatter,
    )
    save.add_argument("name", metavar="NAME", help="letters, digits, '.', '_', '-'")
    save.add_argument("--force", action="store_true", help="replace a baseline of that name")
    listing = actions.add_parser("list", help="list the saved baselines", parents=[debug])
    for action in (save, listing):
        action.add_argument(
            "--results", default="results", metavar="FOLDER", help="(default results)"
        )
    baseline.set_defaults(handler=cmd_baseline)
    return parser


def main(argv: list[str] | None = None) -> int:
    prog, debug = "memsweep", "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        prog, debug = f"memsweep {args.command}", args.debug
        return args.handler(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except CliError as error:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {error}", file=sys.stderr)
        return USAGE
    except Exception as error:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run again with --debug for the traceback)"
        print(f"{prog}: failed: {type(error).__name__}: {error}{hint}", file=sys.stderr)
        return ERROR


if __name__ == "__main__":
    sys.exit(main())
