"""What the Snakemake workflow asks of the plan: output patterns, wildcard constraints,
and the input, params and resource functions of its rules.

Kept here rather than in ``workflow/rules/common.smk`` so that it is tested like
the rest of the package and the rule files only wire things together. Parsing
a sweep imports nothing heavy (no PyMDP, JAX, scipy or pandas).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import operator
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from memsweep.agents import module_path
from memsweep.agents.base import PYMDP_PINNED
from memsweep.harness import envs, retry
from memsweep.plan import config as config_module
from memsweep.plan import predict, sweep
from memsweep.plan.jobs import LATER, SETTINGS, reference_job

PACKAGE = Path(__file__).resolve().parent


def sources(*names: str) -> tuple[str, ...]:
    """The source files of the named package folders and files (``.py`` and ``.yaml``).

    Stages are folders, so a stage's digest is its folder's: a module added to a stage
    is in its digest without being listed anywhere.
    """
    found = []
    for name in names:
        path = PACKAGE / name
        members = [path] if path.is_file() else path.rglob("*")
        found += [p for p in members if p.suffix in (".py", ".yaml") and p.is_file()]
    return tuple(_as_input(p) for p in sorted(set(found)))


def _as_input(path: Path) -> str:
    """A source file as a rule's input: relative to the folder Snakemake runs in when the
    code lies inside it, so that a moved or copied checkout names the same inputs
    (Snakemake reruns a job whose set of input paths changed)."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# What each stage's output depends on. Every measurement: all a measure job imports (in
# its command's process and its worker's; tests/test_digests.py traces them) but the
# backends' own modules, which each job adds for its backend alone. The reference: what
# its worker imports, but not the pymdp-numpy adapter: an edit to one backend must rerun
# that backend's jobs only (a PyMDP upgrade changes the pinned version instead).
ENTRY = ("__init__.py", "cli.py", "files.py", "plan/__init__.py", "plan/jobs.py")
HARNESS = sources(
    *ENTRY, "harness", "world", "results/__init__.py", "results/schema.py",
    "plan/config.py", "agents/base.py", "agents/__init__.py",
)  # fmt: skip
REFERENCE_CODE = sources(
    *ENTRY, "harness/__init__.py", "harness/reference.py", "harness/worker.py", "world",
    "agents/base.py", "agents/__init__.py",
)  # fmt: skip
# A plan depends on the backends' declared capabilities and predictions.
PLAN_CODE = sources("plan", "agents", "world")
AGGREGATE_CODE = sources("results", "files.py")
# The predictor: its fitting, the rows it reads, the sizes it fits against.
PREDICTOR_CODE = sources("report/predictor.py", "report/queries.py", "plan", "results", "files.py")
REPORT_CODE = sources("report")
# `memsweep compare`, where the config asks for one: beside the hotspot report.
COMPARE_FOLDER = "results/report"
COMPARE_CODE = sources("results", "cli.py", "files.py")
# The environment of each PyMDP release the sweep names but memsweep does not pin
# (memsweep.harness.envs): the pymdp_env rule's output, an input of the release's jobs.
ENVS = "results/envs"
ENVS_CODE = sources("harness/envs.py", "agents/base.py")
# Deep profiles (memsweep.harness.profile): the checkpoint that picks them depends on its
# choosing; each profile job on the measure rule's digest of its backend.
PROFILES = "results/profiles"
PROFILE_TARGETS_CODE = sources("harness/profile.py")
# Resident memory of the Snakemake processes that run a job on a cluster node, beside
# the measured process itself (see docs/cluster.md).
SNAKEMAKE_OVERHEAD_MB = 512
# Local limits (`--resources`) that a measure job's requests count against.
REQUESTED = ("mem_mb", "runtime")


@functools.cache
def _digest(paths: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        # Paths relative to the package: moving the checkout does not rerun anything.
        name = Path(path).resolve().relative_to(PACKAGE).as_posix()
        digest.update(name.encode() + b"\0" + Path(path).read_bytes())
    return digest.hexdigest()[:16]


def measure_digest(backend: str) -> str:
    """The code a measure job of ``backend`` depends on: the harness and its backend module."""
    return _digest((*HARNESS, str(module_path(backend))))


def _fast_signature(function: Callable) -> Callable:
    """Snakemake asks inspect.signature() about every function for every job; a
    precomputed ``__signature__`` is its fast path."""
    function.__signature__ = inspect.signature(function)
    return function


def _alternatives(values) -> str:
    return "|".join(re.escape(v) for v in sorted({str(v) for v in values}))


def user_world_files(world: str) -> list[str]:
    """A user's world's own file (none for a shipped world, or a module not found)."""
    import importlib.util

    from memsweep.world.user import is_user_world

    if not is_user_world(world):
        return []
    if world.endswith(".npz"):
        return [world]
    try:
        spec = importlib.util.find_spec(world.partition(":")[0])
    except (ImportError, ValueError):
        return []
    return [spec.origin] if spec is not None and spec.origin else []


class Pipeline:
    """The plan of one config, seen from the workflow."""

    def __init__(self, config: dict, predictor: str | Path = predict.PREDICTOR):
        self.config = config_module.check(config)
        # The last sweep's fitted predictor (none before the first): the plan's predictions
        # and so the measure jobs' requests follow it. The measure rule's mem_mb and
        # runtime are resources, which are no rerun trigger, so a new predictor reruns no
        # measurement; the plan rule reruns when it changes a job's status (plan_statuses).
        self.predictor = predict.load_predictor(predictor)
        self.planned = sweep.plan(self.config, self.predictor)
        self.axes = self.planned[0].axes
        self.runnable = {p.path: p for p in self.planned if p.status == sweep.RUN}
        self.folder_axes = sweep.folder_axes(self.axes)
        # A measure job's wildcards, in the order of the keys of the rule functions' tables.
        self.key_names = (*self.folder_axes, "policy_len")
        self.measure_pattern = (
            f"{sweep.MEASUREMENTS}/"
            + "/".join(f"{axis}={{{axis}}}" for axis in self.folder_axes)
            + "/policy_len={policy_len}.parquet"
        )
        self.reference_axes = ["grid"] + [
            a for a in self.folder_axes if a in sweep.REFERENCE_SETTINGS
        ]
        self.reference_pattern = (
            f"{sweep.REFERENCES}/"
            + "/".join(f"{axis}={{{axis}}}" for axis in self.reference_axes)
            + "/policy_len={policy_len}.npz"
        )
        self.references = {}
        for planned in self.runnable.values():
            path = sweep.reference_path(planned.job, self.axes)
            if path not in self.references:
                self.references[path] = reference_job(planned.job)

    # Paths -----------------------------------------------------------------
    @staticmethod
    def beside(pattern: str, folder: str, suffix: str) -> str:
        """``results/X/…`` -> ``results/{folder}/X/…{suffix}`` (a job's log)."""
        return f"results/{folder}/{pattern.removeprefix('results/')}{suffix}"

    def measurement_files(self) -> list[str]:
        return sorted(self.runnable)

    def wildcard_constraints(self) -> dict[str, str]:
        """Each wildcard matches only values the plan knows: no path outside results/."""
        axes = (*self.folder_axes, "policy_len")
        return {
            axis: _alternatives(sweep.folder_value(getattr(p.job, axis)) for p in self.planned)
            for axis in axes
        }

    # Rule functions -----------------------------------------------------------
    def planned_job(self, wildcards) -> sweep.PlannedJob:
        path = self.measure_pattern.format(**wildcards)
        if path not in self.runnable:
            raise ValueError(f"{path} is not a runnable configuration of this sweep's plan")
        return self.runnable[path]

    def model_settings(self) -> str:
        """The settings of every job that are not in its path, as ``--set key=value …``.

        A plain string (no braces: Snakemake formats params strings with the wildcards),
        the same for every job: a changed model setting changes it, so every job that
        uses the setting reruns. A measure job is its wildcards plus these settings.
        """
        fixed = {
            key: value
            for key, value in self.config["model"].items()
            # A setting added later, at its default, is left out: the command of every job
            # measured before it existed stays the same (memsweep.plan.jobs.LATER).
            if key not in self.axes and not (key in LATER and value == SETTINGS[key].default)
        }
        return " ".join(f"--set {key}={value}" for key, value in sorted(fixed.items()))

    # PyMDP releases ------------------------------------------------------------------
    def pymdp_releases(self) -> list[str]:
        """The releases the runnable jobs run on but the pinned one: each has an environment."""
        versions = {p.job.pymdp_version for p in self.runnable.values()}
        return sorted(versions - {PYMDP_PINNED})

    @staticmethod
    def env_marker(version: str) -> str:
        return f"{ENVS}/pymdp-{version}.json"

    def env_input(self) -> list[str] | Callable:
        """The measure rule's ``env`` input: the marker of the environment of the job's
        release (none for the pinned release). A list where every job runs on one release,
        a lookup by the ``pymdp_version`` wildcard where it is an axis."""
        if "pymdp_version" not in self.axes:
            return [self.env_marker(v) for v in self.pymdp_releases()]
        markers = {v: [self.env_marker(v)] for v in self.pymdp_releases()}

        def env(wildcards) -> list[str]:
            return markers.get(wildcards.pymdp_version, [])

        return _fast_signature(env)

    @staticmethod
    def env_requirements(wildcards) -> str:
        """The pymdp_env rule's ``requirements`` param: what the environment installs, at
        which pins (a new pin rebuilds it, and so reruns its release's jobs)."""
        version = wildcards.version
        return " ".join([*envs.requirements(version), "-c", *envs.constraints()])

    @staticmethod
    def env_command() -> str:
        """The pymdp_env rule's shell command: build (or find) the release's environment."""
        return (
            f"{shlex.quote(sys.executable)} -m memsweep.harness.envs {{wildcards.version}} "
            "--marker {output} > {log} 2>&1"
        )

    def env_constraints(self) -> dict[str, str]:
        """The pymdp_env rule's ``version`` wildcard: the releases of this sweep only."""
        return {"version": _alternatives(self.pymdp_releases() or ["none"])}

    def compare_command(self) -> str | None:
        """The compare rule's shell command, where the config asks for a comparison
        (``compare:``): ``memsweep compare`` of this sweep's table with a baseline, or
        between two values of an axis, into ``results/report/``; None: no rule."""
        wanted = self.config.get("compare")
        if not wanted:
            return None
        this = "{input.measurements}"
        sides = (
            f"{shlex.quote(wanted['baseline'])} {this}"
            if "baseline" in wanted
            else f"{this} --axis {shlex.quote(wanted['axis'])}"
        )
        return (
            f"{shlex.quote(sys.executable)} -m memsweep.cli compare {sides} "
            f"--threshold {wanted['threshold']:g} --results results --out {COMPARE_FOLDER} "
            "> {log} 2>&1"
        )

    def compare_outputs(self) -> list[str]:
        """What the compare rule writes (none without ``compare:``), the page first."""
        if not self.compare_command():
            return []
        return [f"{COMPARE_FOLDER}/compare.{ext}" for ext in ("html", "md", "csv", "png")]

    def measure_command(self) -> str:
        """The measure rule's shell command: ``memsweep measure`` on the job's output path.

        A shell command, not ``run:`` or ``script:``: Snakemake runs those through a new
        Snakemake process per job, which parses the whole sweep again (seconds a job),
        and re-reads a script's source for every job when it plans. The path names the
        configuration (``--from-path``), so the command has few placeholders: Snakemake
        formats it several times per job even in a dry run.

        The cap comes from ``resources`` (:meth:`mem_cap`), not ``params``: Snakemake's
        code trigger compares this command unformatted, and resources are no trigger, so a
        changed budget reruns no measurement by itself (see :meth:`cap_retry`).

        Exit status 3 (``memsweep.cli.MEASUREMENT_FAILED``) means the job failed and wrote
        its failed record: the job counts as done and the sweep goes on (the report lists
        it); any other non-zero status fails the job.
        """
        return (
            f"{shlex.quote(sys.executable)} -m memsweep.cli measure --from-path --out {{output}} "
            "{params.model} --reference {input.reference} --mem-cap-mb {resources.mem_cap_mb} "
            "> {log} 2>&1 || [ $? -eq 3 ]"
        )

    @functools.cache  # noqa: B019 (one Pipeline per parse: it lives as long as the workflow)
    def rule_functions(self) -> dict:
        """Plain functions for the measure rule's params and resources, over tables made once.

        Snakemake calls each of them for every job, dry runs included (thousands of times),
        so they only look a value up: the code digest per backend, the request (memory and
        minutes at the first attempt) per configuration, keyed by its wildcard values.
        """
        digests, requests = {}, {}
        for planned in self.runnable.values():
            job = planned.job
            if job.backend not in digests:
                # A digest of the harness and the job's backend module, as a params value
                # rather than eleven input files per job: an edit to agents/lean.py changes
                # the lean jobs' params only, so only they rerun, and parsing stays fast.
                digests[job.backend] = measure_digest(job.backend)
            # What a scheduler is asked for: the prediction with headroom, plus what the
            # job's own Snakemake processes hold (measured on SLURM: ~114 MB for the job
            # script, ~200 MB more per step); more on a retry.
            measured = min(1.5 * planned.predicted_mb + 256, self.max_job_mb)
            minutes = predict.predict_minutes(job)
            requests[self._key(job)] = (measured + SNAKEMAKE_OVERHEAD_MB, minutes)
        key_of = self._key_of_wildcards()

        def request(wildcards) -> tuple[float, int]:
            try:
                return requests[key_of(wildcards)]
            except KeyError:
                self.planned_job(wildcards)  # raises, naming the path
                raise

        def code_version(wildcards):
            return digests[wildcards.backend]

        def mem_mb(wildcards, attempt):
            return int(request(wildcards)[0] * attempt)

        def runtime(wildcards, attempt):
            return request(wildcards)[1] * attempt

        functions = {"code_version": code_version, "mem_mb": mem_mb, "runtime": runtime}
        for function in functions.values():
            _fast_signature(function)
        return functions

    def _key(self, job) -> tuple[str, ...]:
        return tuple(sweep.folder_value(getattr(job, name)) for name in self.key_names)

    def _key_of_wildcards(self):
        """A job's wildcards -> the key of its configuration in the rule functions' tables."""
        return operator.attrgetter(*self.key_names)

    def mem_cap(self) -> str:
        """The measure rule's ``mem_cap_mb`` resource: the budget, the supervisor's cap.

        A resource, not a param: resources are no rerun trigger, so changing the budget
        reruns only the jobs whose plan status it changes (over-budget -> run: they have no
        output yet) and, through :meth:`cap_retry`, those the cap stopped below their need.
        A constant, so a dry run evaluates nothing per job, and a string, exact (Snakemake
        rounds a float resource) and the same for every job (so a SLURM group takes it as
        is). Nothing limits it: no executor or ``--resources`` knows its name.
        """
        return repr(self.max_job_mb)

    @functools.cache  # noqa: B019 (one Pipeline per parse, as rule_functions)
    def cap_retry(self, root: str | Path = ".") -> str | Callable:
        """The measure rule's ``cap_retry`` param: changes when the budget rises above the
        peak of a job that the cap stopped, so that only such a job reruns
        (:func:`memsweep.harness.retry.marker`).

        Read once per parse from the sidecars that ``memsweep measure`` leaves beside the
        measurements under ``root`` (the folder Snakemake runs in); usually there are
        none, and the param is a constant.
        """
        markers = {}
        tree = Path(root) / sweep.MEASUREMENTS
        for path, history in retry.histories(tree).items():
            planned = self.runnable.get(Path(path).relative_to(root).as_posix())
            value = retry.marker(self.max_job_mb, history)
            if planned is not None and value:
                markers[self._key(planned.job)] = value
        if not markers:
            return ""
        key_of = self._key_of_wildcards()

        def cap_retry(wildcards) -> str:
            return markers.get(key_of(wildcards), "")

        return _fast_signature(cap_retry)

    def measure_resources(self, nodes: int | None, limits) -> dict:
        """The measure rule's resources: per-job ``mem_mb`` and ``runtime`` where something
        reads them, else none.

        They are read by a cluster or cloud executor, which Snakemake runs only with
        ``--jobs`` (``nodes``, not None then), and by the local scheduler when ``--resources``
        limits ``mem_mb`` or ``runtime`` (``limits``: the names of the global resources).
        Elsewhere (a plain local run, every local dry run) they would cost Snakemake two
        function evaluations per job, a third of what our rules added to its dry run of a
        sweep of thousands of jobs. Resources are no rerun trigger: switching them on or off
        reruns nothing.
        """
        if nodes is None and not set(REQUESTED) & set(limits):
            return {}
        functions = self.rule_functions()
        return {name: functions[name] for name in REQUESTED}

    def plan_statuses(self) -> str:
        """The plan rule's ``statuses`` param: a digest of every job's status (run,
        unsupported, over-budget) under the current predictor.

        So a new predictor replans when it moves a job across the budget, and only then:
        the figures a plan records are those its jobs were planned and measured with (the
        report compares them with what was measured), and the predictor that the first
        sweep writes does not replan it (a second run does nothing). The measure jobs'
        requests follow the current predictor at every parse all the same (resources).
        """
        statuses = sorted((p.job.config_id, p.status) for p in self.planned)
        return hashlib.sha256(json.dumps(statuses).encode()).hexdigest()[:16]

    def code_digests(self, wildcards=None) -> str:
        """The predictor rule's ``code`` param: backend -> the digest of the code that
        measured it (:func:`measure_digest`), recorded in the predictor, as JSON (a
        function, as :meth:`config_json`: Snakemake formats a params string's braces)."""
        backends = sorted({p.job.backend for p in self.runnable.values()})
        return json.dumps({backend: measure_digest(backend) for backend in backends})

    # Profiles ---------------------------------------------------------------------
    @property
    def profile_pattern(self) -> str:
        """A profile's rows: its measurement's path, under ``results/profiles/``."""
        return PROFILES + self.measure_pattern.removeprefix(sweep.MEASUREMENTS)

    @property
    def flamegraph_pattern(self) -> str:
        return self.profile_pattern.removesuffix(".parquet") + ".html"

    def profile_paths(self, wildcards=None) -> str:
        """The checkpoint's ``paths`` param: config_id -> its profile path, for every
        runnable job, as JSON (a function: Snakemake formats a params string's braces)."""
        paths = {
            planned.job.config_id: PROFILES + path.removeprefix(sweep.MEASUREMENTS)
            for path, planned in self.runnable.items()
            # memray lives in memsweep's own environment: the pinned release is profiled
            if planned.job.pymdp_version == PYMDP_PINNED
        }
        return json.dumps(paths, sort_keys=True)

    @staticmethod
    def profile_files(targets: str | Path) -> list[str]:
        """The checkpoint's targets file -> each profile's rows and flame graph."""
        paths = Path(targets).read_text().split()
        return [name for path in paths for name in (path, path.removesuffix(".parquet") + ".html")]

    def profile_command(self) -> str:
        """The profile rule's shell command: ``memsweep profile`` of the configuration its
        measurement's path names, with the measure rule's settings, reference and cap.
        As for :meth:`measure_command`, exit status 3 is a failed profile whose record and
        page are written."""
        return (
            f"{shlex.quote(sys.executable)} -m memsweep.cli profile --from-path "
            "{input.measurement} --out {output.rows} --flamegraph {output.flamegraph} "
            "{params.model} --reference {input.reference} --mem-cap-mb {resources.mem_cap_mb} "
            "> {log} 2>&1 || [ $? -eq 3 ]"
        )

    def world_files(self, wildcards) -> list[str]:
        """The file a user's world is read or built from (its ``.npz``, its function's
        module), an input of its reference: a changed model reruns the reference, and so
        every measurement that replays it (the reference is their input)."""
        job = self.references[self.reference_pattern.format(**wildcards)]
        return user_world_files(job.world)

    def reference_json(self, wildcards) -> str:
        job = self.references[self.reference_pattern.format(**wildcards)]
        return json.dumps(job.to_dict(), sort_keys=True)

    @property
    def max_job_mb(self) -> float:
        return float(self.config["budget"]["max_job_mb"])

    def config_json(self, wildcards=None) -> str:
        return json.dumps(self.config, sort_keys=True)

    def summary(self) -> str:
        return sweep.summary(self.planned)
