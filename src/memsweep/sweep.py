"""The sweep: config -> every combination of the axes, each planned as run, unsupported
or over-budget, with a predicted memory figure.

Runs at Snakemake parse time, so it stays cheap: no PyMDP, JAX or scipy import.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field, replace

from . import agents
from .config import ConfigError
from .spec import MODEL_SETTINGS, Job

# The axes every sweep has, in the order of the output folders; extra axes (model
# settings promoted to axes) follow `sharing`; `policy_len` names the file.
CORE_AXES = ("backend", "storage", "dtype", "grid", "agents", "sharing", "policy_len")
RUN, UNSUPPORTED, OVER_BUDGET = "run", "unsupported", "over-budget"
MEASUREMENTS = "results/measurements"
REFERENCES = "results/reference"

# Resident memory of a job's process after importing its backend (MB): measured on the
# reference machine (see the report's import rows); the prediction adds the model and
# the agents to it.
IMPORT_MB = {"pymdp-numpy": 260.0, "pymdp-jax": 420.0, "lean": 120.0}
ACTIONS = 5
INDEX_BYTES = 4


@dataclass(frozen=True)
class PlannedJob:
    job: Job
    status: str
    reason: str | None
    predicted_mb: float
    axes: tuple[str, ...] = field(default=CORE_AXES)

    @property
    def path(self) -> str:
        return measurement_path(self.job, self.axes)

    def row(self) -> dict:
        return {
            **self.job.columns(),
            "status": self.status,
            "reason": self.reason,
            "predicted_mb": self.predicted_mb,
            "path": self.path if self.status == RUN else None,
            "reference": reference_path(self.job, self.axes),
        }


def folder_axes(axes: tuple[str, ...]) -> tuple[str, ...]:
    """Axes that become folders, in a fixed order (so reordering a config moves nothing)."""
    extra = tuple(a for a in axes if a not in CORE_AXES)
    return (*CORE_AXES[:-1], *extra)


def measurement_path(job: Job, axes: tuple[str, ...]) -> str:
    folders = "/".join(f"{axis}={getattr(job, axis)}" for axis in folder_axes(axes))
    return f"{MEASUREMENTS}/{folders}/policy_len={job.policy_len}.parquet"


def reference_path(job: Job, axes: tuple[str, ...]) -> str:
    """One reference per grid, promoted model setting and planning depth."""
    extra = [a for a in folder_axes(axes) if a in MODEL_SETTINGS]
    folders = "/".join([f"grid={job.grid}", *(f"{a}={getattr(job, a)}" for a in extra)])
    return f"{REFERENCES}/{folders}/policy_len={job.policy_len}.npz"


def model_mb(job: Job) -> float:
    """MB of one A + B + C + D in the job's storage and dtype (local noise: 5 entries a column)."""
    n, size = job.states, {"float64": 8, "float32": 4, "float16": 2}[job.dtype]
    a_nnz = n * n if job.noise_kind == "uniform" else 5 * n
    b_nnz = ACTIONS * 2 * n
    if job.storage == "dense":
        matrices = (n * n + ACTIONS * n * n) * size
    else:
        per_entry = size + INDEX_BYTES * (2 if job.storage == "coo" else 1)
        pointers = 0 if job.storage == "coo" else (1 + ACTIONS) * (n + 1) * INDEX_BYTES
        matrices = (a_nnz + b_nnz) * per_entry + pointers
    return (matrices + 2 * n * size) / 1e6


def predict_mb(job: Job) -> float:
    """Predicted peak resident memory of the job's process (MB).

    import cost + the model (once, plus a copy per agent when private) + per-agent
    beliefs over policies + the largest per-call temporary. Each term follows a
    measurement: PyMDP's JAX agent holds a copy of the model per batch row in both
    layouts and its jitted step keeps one B slice per policy and agent as scratch;
    the numpy agents build N×N temporaries; ``lean`` only vectors.
    """
    n, policies = job.states, ACTIONS**job.policy_len
    size = {"float64": 8, "float32": 4, "float16": 2}[job.dtype]
    model = model_mb(job)
    copies = 1 + (job.agents if job.sharing == "private" else 0)
    beliefs = job.agents * (policies * (job.policy_len + 1) + 4) * n * 8 / 1e6
    temporaries = 2 * model if job.storage == "dense" else 0.0
    if job.backend == "pymdp-jax":
        copies = 1 + job.agents
        temporaries = job.agents * policies * n * n * max(size, 4) / 1e6
    return IMPORT_MB.get(job.backend, 300.0) + copies * model + beliefs + temporaries


def predict_minutes(job: Job) -> int:
    """Generous wall-time request for a scheduler: import + steps, never under 5 min."""
    work = job.agents * job.steps * job.repeats * ACTIONS**job.policy_len * job.states**2
    return max(5, math.ceil(2 + work / 2e10))


def jobs_from_config(config: dict) -> tuple[list[Job], tuple[str, ...]]:
    """Every combination of the axes, crossed with the model settings."""
    sweep, model = config["sweep"], dict(config.get("model", {}))
    axes = tuple(sweep)
    missing = [axis for axis in CORE_AXES if axis not in sweep]
    if missing:
        raise ConfigError(f"sweep: missing axes {missing}; every sweep needs {list(CORE_AXES)}")
    for axis in axes:
        if axis not in CORE_AXES and axis not in MODEL_SETTINGS:
            allowed = list(CORE_AXES) + list(MODEL_SETTINGS)
            raise ConfigError(f"sweep.{axis}: unknown axis; allowed: {allowed}")
        values = sweep[axis]
        if not values:
            raise ConfigError(f"sweep.{axis}: empty list; give at least one value")
        duplicates = [v for v, count in Counter(map(str, values)).items() if count > 1]
        if duplicates:
            raise ConfigError(f"sweep.{axis}: duplicate values {duplicates}")
    jobs = []
    for combination in itertools.product(*(sweep[axis] for axis in axes)):
        settings = {**model, **dict(zip(axes, combination, strict=True))}
        try:
            jobs.append(Job.from_dict(settings))
        except ValueError as error:
            raise ConfigError(f"sweep: {error}") from error
    return jobs, axes


def plan_job(job: Job, axes: tuple[str, ...], max_job_mb: float) -> PlannedJob:
    predicted = round(predict_mb(job), 1)
    try:
        reason = agents.get(job.backend).unsupported_reason(job.agent_spec())
    except agents.UnknownBackend as error:
        reason = str(error)
    if reason:
        return PlannedJob(job, UNSUPPORTED, reason, predicted, axes)
    if predicted > max_job_mb:
        reason = f"predicted {predicted:.0f} MB > budget.max_job_mb {max_job_mb:g} MB"
        return PlannedJob(job, OVER_BUDGET, reason, predicted, axes)
    return PlannedJob(job, RUN, None, predicted, axes)


def plan(config: dict) -> list[PlannedJob]:
    jobs, axes = jobs_from_config(config)
    max_job_mb = float(config.get("budget", {}).get("max_job_mb", math.inf))
    planned = [plan_job(job, axes, max_job_mb) for job in jobs]
    if not any(p.status == RUN for p in planned):
        smallest = min(p.predicted_mb for p in planned)
        raise ConfigError(
            f"budget.max_job_mb: {max_job_mb:g} MB is below every runnable job "
            f"(the smallest needs {smallest:.0f} MB), so nothing would run"
        )
    return planned


def reference_job(job: Job) -> Job:
    """The job whose reference trace ``job`` replays (float64 dense PyMDP numpy, one agent)."""
    from .reference import REFERENCE_SPEC

    return replace(job, **REFERENCE_SPEC)


def summary(planned: list[PlannedJob]) -> str:
    """A short text: counts by status and backend, the predicted total."""
    lines = [f"memsweep plan: {len(planned)} configurations"]
    by_status = Counter(p.status for p in planned)
    lines.append(
        "  " + ", ".join(f"{status}: {count}" for status, count in sorted(by_status.items()))
    )
    for backend in sorted({p.job.backend for p in planned}):
        counts = Counter(p.status for p in planned if p.job.backend == backend)
        lines.append(
            f"  {backend:<12} " + ", ".join(f"{s}: {c}" for s, c in sorted(counts.items()))
        )
    runnable = [p for p in planned if p.status == RUN]
    total = sum(p.predicted_mb for p in runnable)
    largest = max(runnable, key=lambda p: p.predicted_mb)
    lines.append(
        f"  predicted memory of runnable jobs: {total / 1e3:.1f} GB in all, "
        f"largest {largest.predicted_mb:.0f} MB ({largest.path})"
    )
    references = {reference_path(p.job, p.axes) for p in runnable}
    lines.append(f"  reference traces: {len(references)}")
    reasons = Counter(p.reason for p in planned if p.status == UNSUPPORTED)
    for reason, count in reasons.most_common(5):
        lines.append(f"  unsupported ×{count}: {reason}")
    return "\n".join(lines)


def plan_table(planned: list[PlannedJob]):
    import pandas as pd

    return pd.DataFrame([p.row() for p in planned])


def write_plan(planned: list[PlannedJob], path) -> None:
    """The plan table, written atomically (a killed run never leaves half a plan)."""
    from .files import atomic

    with atomic(path) as temporary:
        plan_table(planned).to_parquet(temporary, index=False)
