"""What a job will need, before it runs: resident memory (MB) and wall time.

The plan marks jobs over the budget with it, and a cluster is asked for it. The model's
size is the world's and the storage's (:func:`model_mb`); everything else is a term its
backend declares (:meth:`memsweep.agents.base.Backend.predict_mb`: the import, the model
copies, the beliefs, the largest temporary), each following a measurement (see the
report's prediction section for how close it comes).

Where a sweep has been measured, a predictor fitted to it (:mod:`memsweep.plan.fitted`,
``results/model/predictor.json``) replaces that formula for the backends it covers
(:func:`predicted`); the plan records which of the two gave each figure.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from memsweep import agents
from memsweep.agents.base import Backend
from memsweep.plan import fitted
from memsweep.plan.jobs import Job
from memsweep.world.base import DEFAULT_WORLD
from memsweep.world.gridworld import ACTIONS
from memsweep.world.storage import stored_bytes


def _backend(name: str) -> type[Backend]:
    """The backend's class; the base class (its default terms) for a name no module defines."""
    try:
        return type(agents.get(name))
    except agents.UnknownBackend:
        return Backend


def import_mb(backend: str) -> float:
    """The fixed per-process cost the prediction assumes for ``backend`` (MB)."""
    return _backend(backend).import_mb


def model_mb(job: Job) -> float:
    """MB of one A + B + C + D in the job's storage and dtype: for the grid world by its
    formula (local noise: 5 entries a column of A; each B moves or stays: 2 a column),
    for any other from the shapes and non-zeros its world declares."""
    if job.world != DEFAULT_WORLD:
        return _shaped_model_mb(job)
    n = job.states
    a_nnz = n * n if job.noise_kind == "uniform" else 5 * n
    a = stored_bytes((n, n), a_nnz, job.storage, job.dtype)
    b = len(ACTIONS) * stored_bytes((n, n), 2 * n, job.storage, job.dtype)
    c_and_d = stored_bytes((2, n), 2 * n, "dense", job.dtype)
    return (a + b + c_and_d) / 1e6


def _shaped_model_mb(job: Job) -> float:
    shape = job.shape()
    total = 0
    for _, matrix, copies, nonzero in shape.arrays():
        total += copies * stored_bytes(matrix, -(-nonzero // copies), job.storage, job.dtype)
    vectors = sum(a[0] for a in shape.A) + sum(shape.states)  # C and D
    return (total + stored_bytes((1, vectors), vectors, "dense", job.dtype)) / 1e6


def predict_mb(job: Job) -> float:
    """Predicted peak resident memory of the job's process (MB), by its backend's terms."""
    return _backend(job.backend).predict_mb(job.agent_spec(), job.states, model_mb(job))


def analytic_terms(job: Job) -> dict[str, float]:
    """The terms :func:`predict_mb` sums (MB), by name."""
    backend, spec, model = _backend(job.backend), job.agent_spec(), model_mb(job)
    return {
        "import": backend.import_mb,
        "model copies": backend.model_copies(spec) * model,
        "beliefs": backend.beliefs_mb(spec, job.states),
        "temporaries": backend.temporaries_mb(spec, job.states, model),
    }


# Where the workflow keeps the fitted predictor, relative to the folder Snakemake runs in.
PREDICTOR = "results/model/predictor.json"
FITTED, ANALYTIC = "fit", "analytic"  # the plan's ``predicted_by``


def sizes(job: Job) -> dict[str, float]:
    """What each consumer of the fitted predictor scales with (MB, by arithmetic).

    ``fixed``: nothing. ``model``: one model's exact size (N²·itemsize for dense storage,
    N·(itemsize + index) for sparse). ``agents``: the model copies the agents make, as
    the backend declares them (private: one per agent, so N²·agents for dense; PyMDP's
    JAX agent: one per batch row in both layouts), plus their beliefs. ``calls``: the
    backend's declared largest per-call temporary (PyMDP's JAX step: agents·5^L·N²).
    """
    backend, spec, model = _backend(job.backend), job.agent_spec(), model_mb(job)
    return {
        "fixed": 0.0,
        "model": model,
        "agents": (backend.model_copies(spec) - 1) * model + backend.beliefs_mb(spec, job.states),
        "calls": backend.temporaries_mb(spec, job.states, model),
    }


def predicted(job: Job, predictor: fitted.Predictor | None = None) -> tuple[float, str]:
    """The job's predicted peak (MB) and what gave it: the fit where ``predictor`` covers
    its backend, else the analytic formula (:func:`predict_mb`)."""
    key = fitted.job_key(job)
    if predictor is not None and predictor.covers(key):
        return predictor.peak_mb(key, sizes(job)), FITTED
    return predict_mb(job), ANALYTIC


def load_predictor(path: str | Path = PREDICTOR) -> fitted.Predictor | None:
    """The fitted predictor at ``path``, or None: no file, or one this code cannot read
    (an older format, which the workflow's predictor rule rewrites), said on stderr."""
    try:
        return fitted.load(path)
    except fitted.PredictorError as error:
        print(f"memsweep: ignoring the predictor: {error}", file=sys.stderr)
        return None


def predict_minutes(job: Job) -> int:
    """Generous wall-time request for a scheduler: import + steps, never under 5 min."""
    work = job.agents * job.steps * job.repeats * len(ACTIONS) ** job.policy_len * job.states**2
    return max(5, math.ceil(2 + work / 2e10))
