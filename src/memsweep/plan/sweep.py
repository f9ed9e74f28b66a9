"""The sweep: config -> every combination of the axes, each planned as run, unsupported
or over-budget, with a predicted memory figure.

Runs at Snakemake parse time, so it stays cheap: no PyMDP, JAX or scipy import.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote

from memsweep.plan import config as config_module
from memsweep.plan.config import ConfigError
from memsweep.plan.fitted import Predictor
from memsweep.plan.jobs import (
    CORE_AXES,
    MODEL_SETTINGS,
    REFERENCE_SETTINGS,
    Job,
    unsupported_reason,
)
from memsweep.plan.predict import ANALYTIC, predicted
from memsweep.world import registry as worlds
from memsweep.world.base import DEFAULT_WORLD
from memsweep.world.model import ModelError

# CORE_AXES (Job's axes) are the axes every sweep has, in the order of the output folders;
# extra axes (model settings promoted to axes) follow `sharing`; `policy_len` names the file.
RUN, UNSUPPORTED, OVER_BUDGET = "run", "unsupported", "over-budget"
MEASUREMENTS = "results/measurements"
REFERENCES = "results/reference"


@dataclass(frozen=True)
class PlannedJob:
    job: Job
    status: str
    reason: str | None
    predicted_mb: float
    axes: tuple[str, ...] = field(default=CORE_AXES)
    predicted_by: str = ANALYTIC  # "fit": the sweep's fitted predictor; else the formula

    @property
    def path(self) -> str:
        return measurement_path(self.job, self.axes)

    def row(self) -> dict:
        return {
            **self.job.columns(),
            "pymdp_version": self.job.pymdp_version,
            "status": self.status,
            "reason": self.reason,
            "predicted_mb": self.predicted_mb,
            "predicted_by": self.predicted_by,
            "path": self.path if self.status == RUN else None,
            "reference": reference_path(self.job, self.axes),
        }


def folder_axes(axes: tuple[str, ...]) -> tuple[str, ...]:
    """Axes that become folders, in a fixed order (so reordering a config moves nothing)."""
    extra = tuple(a for a in axes if a not in CORE_AXES)
    return (*CORE_AXES[:-1], *extra)


def folder_value(value) -> str:
    """A setting's value as a Hive folder holds it: URI-encoded, so that a user's world
    (``models/mine.npz``, ``package.module:build``) is one folder; every other value is
    left as it is. Hive readers (pyarrow, memsweep's ``hive_parts``) decode it."""
    return quote(str(value), safe="")


def measurement_path(job: Job, axes: tuple[str, ...]) -> str:
    folders = "/".join(f"{axis}={folder_value(getattr(job, axis))}" for axis in folder_axes(axes))
    return f"{MEASUREMENTS}/{folders}/policy_len={job.policy_len}.parquet"


def reference_path(job: Job, axes: tuple[str, ...]) -> str:
    """One reference per grid, promoted model setting (but the PyMDP release: every
    release is scored against the pinned one's trace) and planning depth."""
    extra = [a for a in folder_axes(axes) if a in REFERENCE_SETTINGS]
    folders = "/".join(
        [f"grid={job.grid}", *(f"{a}={folder_value(getattr(job, a))}" for a in extra)]
    )
    return f"{REFERENCES}/{folders}/policy_len={job.policy_len}.npz"


def jobs_from_config(config: dict) -> tuple[list[Job], tuple[str, ...]]:
    """Every combination of the axes of a checked config, crossed with the model settings:
    the ``sweep``'s, then each ``also`` sweep's (the sweep with the axes it names
    replaced); a combination planned twice is one job, in its first place."""
    sweep, model = config["sweep"], dict(config.get("model", {}))
    axes = tuple(sweep)
    sweeps = [("sweep", sweep)]
    sweeps += [(f"also[{i}]", {**sweep, **block}) for i, block in enumerate(config.get("also", []))]
    jobs: dict[str, Job] = {}
    for key, lists in sweeps:
        for combination in itertools.product(*(lists[axis] for axis in axes)):
            settings = {**model, **dict(zip(axes, combination, strict=True))}
            try:
                job = Job.from_dict(settings)
            except ValueError as error:
                raise ConfigError(f"{key}: {error}") from error
            jobs.setdefault(job.config_id, job)
    return list(jobs.values()), axes


def check_worlds(jobs: list[Job]) -> None:
    """Refuse a config whose world is unknown, or whose own model (a user's) is malformed,
    before any job starts: each user model is built once per size and checked."""
    for settings in dict.fromkeys(
        job.world_settings() for job in jobs if job.world != DEFAULT_WORLD
    ):
        try:
            world = worlds.get(settings.world)
            if world.size_reason(settings) is None:
                world.shape(settings)  # builds a user's model, which checks it
        except (worlds.UnknownWorld, ModelError) as error:
            raise ConfigError(f"world: {error}") from None


def size_reason(job: Job, smallest_grid: int) -> str | None:
    """Why a world of one size does not run at ``job``'s grid: it runs at the sweep's
    smallest grid only (once, not once per grid)."""
    if job.world == DEFAULT_WORLD or job.grid == smallest_grid:
        return None
    fixed = worlds.get(job.world).fixed_size
    if fixed is None:
        return None
    return (
        f"{fixed}: a sweep runs it once, at its smallest grid ({smallest_grid}), not at {job.grid}"
    )


def plan_job(
    job: Job,
    axes: tuple[str, ...],
    max_job_mb: float,
    predictor: Predictor | None = None,
    smallest_grid: int | None = None,
) -> PlannedJob:
    mb, by = predicted(job, predictor)
    mb = round(mb, 1)
    reason = unsupported_reason(job) or size_reason(job, smallest_grid or job.grid)
    if reason:
        return PlannedJob(job, UNSUPPORTED, reason, mb, axes, by)
    if mb > max_job_mb:
        reason = f"predicted {mb:.0f} MB > budget.max_job_mb {max_job_mb:g} MB"
        return PlannedJob(job, OVER_BUDGET, reason, mb, axes, by)
    return PlannedJob(job, RUN, None, mb, axes, by)


def plan(config: dict, predictor: Predictor | None = None) -> list[PlannedJob]:
    """Every configuration of ``config`` (checked here, defaults filled in), planned, its
    memory predicted by ``predictor`` where it covers the backend (else the formula)."""
    config = config_module.check(config)
    jobs, axes = jobs_from_config(config)
    check_worlds(jobs)
    max_job_mb = float(config["budget"]["max_job_mb"])
    smallest = min(job.grid for job in jobs)
    planned = [plan_job(job, axes, max_job_mb, predictor, smallest) for job in jobs]
    if not any(p.status == RUN for p in planned):
        over = [p.predicted_mb for p in planned if p.status == OVER_BUDGET]
        if not over:
            reasons = sorted({p.reason for p in planned})
            raise ConfigError(
                "sweep: no configuration is supported, so nothing would run:\n    "
                + "\n    ".join(reasons)
            )
        smallest = min(over)
        raise ConfigError(
            f"budget.max_job_mb: {max_job_mb:g} MB is below every runnable job "
            f"(the smallest needs {smallest:.0f} MB), so nothing would run"
        )
    return planned


def summary(planned: list[PlannedJob]) -> str:
    """What a sweep will do, before anything runs: its axes and their values, the model
    settings, the job count by status and backend, the predicted memory and where the
    results will go."""
    axes = planned[0].axes
    runnable = [p for p in planned if p.status == RUN]
    lines = [f"memsweep plan: {len(planned)} configurations, {len(runnable)} to run"]
    lines.append(
        "  axes, every value planned (each sweep, `also` too, plans all its combinations):"
    )
    width = max(12, *(len(axis) for axis in axes))
    for axis in axes:
        values = dict.fromkeys(str(getattr(p.job, axis)) for p in planned)
        lines.append(f"    {axis:<{width}} {', '.join(values)}")
    fixed = [name for name in MODEL_SETTINGS if name not in axes]
    settings = ", ".join(f"{name}={getattr(planned[0].job, name)}" for name in fixed)
    lines.append(f"  model settings of every job: {settings}")
    by_status = Counter(p.status for p in planned)
    lines.append(
        "  jobs: " + ", ".join(f"{status}: {count}" for status, count in sorted(by_status.items()))
    )
    for backend in sorted({p.job.backend for p in planned}):
        counts = Counter(p.status for p in planned if p.job.backend == backend)
        lines.append(
            f"    {backend:<12} " + ", ".join(f"{s}: {c}" for s, c in sorted(counts.items()))
        )
    total = sum(p.predicted_mb for p in runnable)
    largest = max(runnable, key=lambda p: p.predicted_mb)
    lines.append(
        f"  predicted peak memory of a job: largest {largest.predicted_mb:.0f} MB "
        f"({largest.path}); {total / 1e3:.1f} GB summed over the {len(runnable)} to run"
    )
    by = Counter(p.predicted_by for p in runnable)
    lines.append("  predicted by: " + ", ".join(f"{k}: {v}" for k, v in sorted(by.items())))
    references = {reference_path(p.job, p.axes) for p in runnable}
    pattern = "/".join(f"{axis}=…" for axis in folder_axes(axes))
    lines.append(
        f"  results, under the folder Snakemake runs in: {len(runnable)} measurement files "
        f"{MEASUREMENTS}/{pattern}/policy_len=….parquet, {len(references)} reference "
        f"trace{'' if len(references) == 1 else 's'} in {REFERENCES}/, "
        "the report in results/report/hotspots.md"
    )
    reasons = Counter(p.reason for p in planned if p.status == UNSUPPORTED)
    for reason, count in reasons.most_common(5):
        lines.append(f"  unsupported ×{count}: {reason}")
    over = [p for p in planned if p.status == OVER_BUDGET]
    if over:
        smallest = min(over, key=lambda p: p.predicted_mb)
        lines.append(f"  over-budget ×{len(over)}: from {smallest.reason}")
    return "\n".join(lines)


def plan_table(planned: list[PlannedJob]):
    import pandas as pd

    return pd.DataFrame([p.row() for p in planned])


def write_plan(planned: list[PlannedJob], path) -> None:
    """The plan table, written atomically (a killed run never leaves half a plan)."""
    from memsweep.files import atomic

    with atomic(path) as temporary:
        plan_table(planned).to_parquet(temporary, index=False)
