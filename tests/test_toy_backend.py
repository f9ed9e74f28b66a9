"""A backend is one module: drop a new one into ``agents/`` and the whole pipeline runs it.

In a temporary copy of the workflow (as ``test_workflow`` makes one), one file is added,
``src/memsweep/agents/toy.py``, and nothing else changes but the config: the plan lists
the toy's unsupported combinations with its own reasons, its jobs are measured,
aggregated and reported.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from .test_workflow import copy_workflow, snakemake, write_config

pytestmark = pytest.mark.workflow

TOY = '''"""``toy``: a dense numpy agent that only updates its beliefs (a test's backend)."""

from __future__ import annotations

import numpy as np

from memsweep.agents.base import Backend, Beliefs, Population

DENSE_ONLY = "toy: dense numpy arrays only (it reads rows of A by indexing)"
NO_FLOAT16 = "toy: float16 was never tried"


class ToyPopulation(Population):
    operations = ("infer_states",)

    def __init__(self, model, spec):
        def own(matrix):
            return matrix if spec.sharing == "shared" else matrix.copy()

        self.policies = 5**spec.policy_len
        self.models = [(own(model.A), [own(b) for b in model.B]) for _ in range(spec.agents)]
        self.d = model.D
        self.reset()

    def reset(self):
        self.qs = [self.d.copy() for _ in self.models]
        self.action = None

    def call(self, operation, step):
        if operation != "infer_states":
            raise ValueError(f"unknown operation {operation!r}")
        for index, (a, b) in enumerate(self.models):
            prior = self.qs[index] if self.action is None else b[self.action] @ self.qs[index]
            posterior = a[step.observation[0]] * prior  # a normalised matrix-vector update
            self.qs[index] = posterior / posterior.sum()
        self.action = 0 if step.reference_action is None else int(step.reference_action[0])

    def beliefs(self):
        uniform = np.full(self.policies, 1.0 / self.policies)
        return Beliefs(qs=np.array(self.qs[0], dtype=np.float64), q_pi=uniform, action=(0,))


class Toy(Backend):
    name = "toy"
    storages = {"dense": None, "csr": DENSE_ONLY, "csc": DENSE_ONLY, "coo": DENSE_ONLY}
    dtypes = {"float64": None, "float32": None, "float16": NO_FLOAT16}
    libraries = {"numpy_version": "numpy"}
    import_mb = 100.0

    def load(self):
        pass

    def build_agents(self, model, spec):
        return ToyPopulation(model, spec)


BACKEND = Toy()
'''

CONFIG = {
    "sweep": {
        "backend": ["toy", "lean"],
        "storage": ["dense"],
        "dtype": ["float64", "float16"],  # float16: unsupported by both, each its own reason
        "grid": [3],
        "agents": [1],
        "sharing": ["shared"],
        "policy_len": [1],
    },
    "model": {"steps": 3, "repeats": 1},
    "budget": {"max_job_mb": 4000},
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("toy"))
    (workdir / "src/memsweep/agents/toy.py").write_text(TOY)
    write_config(workdir, CONFIG)
    snakemake(workdir)
    return workdir


def test_plan_lists_the_toys_unsupported_combinations_with_its_reasons(workdir):
    plan = pd.read_parquet(workdir / "results/sweep/plan.parquet")
    toy = plan[plan.backend == "toy"].set_index("dtype")
    assert toy.loc["float64", "status"] == "run"
    assert toy.loc["float16", "status"] == "unsupported"
    assert toy.loc["float16", "reason"] == "toy: float16 was never tried"
    assert (plan[plan.status == "run"].predicted_mb > 0).all()


def test_the_toy_is_measured(workdir):
    files = list((workdir / "results/measurements/backend=toy").rglob("*.parquet"))
    assert len(files) == 1 and "dtype=float64" in str(files[0])
    rows = pd.read_parquet(files[0])
    assert len(rows) and set(rows.status) <= {"ok", "unavailable"}
    assert (rows.status == "ok").any()
    assert set(rows.layout) == {"objects"}


def test_the_toy_is_aggregated_and_reported(workdir):
    measurements = pd.read_parquet(workdir / "results/measurements.parquet")
    toy = measurements[measurements.backend == "toy"]
    assert len(toy) and (toy.status == "ok").any()
    assert "toy" in (workdir / "results/report/hotspots.md").read_text()
