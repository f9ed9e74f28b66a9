"""What a job will need, before it runs: resident memory (MB) and wall time.

The plan marks jobs over the budget with it, and a cluster is asked for it. Each term
follows a measurement (see the report's prediction section for how close it comes).
"""

from __future__ import annotations

import math

from memsweep.plan.jobs import Job

# Resident memory of a job's process after importing its backend (MB): measured on the
# reference machine (see the report's import rows); the prediction adds the model and
# the agents to it.
IMPORT_MB = {"pymdp-numpy": 260.0, "pymdp-jax": 420.0, "lean": 120.0}
ACTIONS = 5


def import_mb(backend: str) -> float:
    """The fixed per-process cost the prediction assumes for ``backend`` (MB)."""
    return IMPORT_MB.get(backend, 300.0)


INDEX_BYTES = 4


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
    return import_mb(job.backend) + copies * model + beliefs + temporaries


def predict_minutes(job: Job) -> int:
    """Generous wall-time request for a scheduler: import + steps, never under 5 min."""
    work = job.agents * job.steps * job.repeats * ACTIONS**job.policy_len * job.states**2
    return max(5, math.ceil(2 + work / 2e10))
