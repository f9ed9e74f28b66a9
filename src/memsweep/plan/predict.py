"""What a job will need, before it runs: resident memory (MB) and wall time.

The plan marks jobs over the budget with it, and a cluster is asked for it. The model's
size is the world's and the storage's (:func:`model_mb`); everything else is a term its
backend declares (:meth:`memsweep.agents.base.Backend.predict_mb`: the import, the model
copies, the beliefs, the largest temporary), each following a measurement (see the
report's prediction section for how close it comes).
"""

from __future__ import annotations

import math

from memsweep import agents
from memsweep.agents.base import Backend
from memsweep.plan.jobs import Job
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
    """MB of one A + B + C + D in the job's storage and dtype (local noise: 5 entries a column
    of A; each B moves or stays: 2 a column)."""
    n = job.states
    a_nnz = n * n if job.noise_kind == "uniform" else 5 * n
    a = stored_bytes((n, n), a_nnz, job.storage, job.dtype)
    b = len(ACTIONS) * stored_bytes((n, n), 2 * n, job.storage, job.dtype)
    c_and_d = stored_bytes((2, n), 2 * n, "dense", job.dtype)
    return (a + b + c_and_d) / 1e6


def predict_mb(job: Job) -> float:
    """Predicted peak resident memory of the job's process (MB), by its backend's terms."""
    return _backend(job.backend).predict_mb(job.agent_spec(), job.states, model_mb(job))


def predict_minutes(job: Job) -> int:
    """Generous wall-time request for a scheduler: import + steps, never under 5 min."""
    work = job.agents * job.steps * job.repeats * len(ACTIONS) ** job.policy_len * job.states**2
    return max(5, math.ceil(2 + work / 2e10))
