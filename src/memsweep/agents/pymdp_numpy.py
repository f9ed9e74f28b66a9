"""``pymdp-numpy``: PyMDP 1.0.4's numpy agent (``pymdp.legacy.agent.Agent``).

On 0.0.x (``pymdp_version``) the same agent is ``pymdp.agent.Agent``, its helpers
``pymdp.utils``; its ``Agent`` takes every argument given here (0.0.7.1: checked).

One ``Agent`` object per agent, PyMDP's defaults (gamma=16, alpha=16,
deterministic marginal action selection). The agent keeps references to the
arrays it is given, so ``shared`` hands every agent the same A and B and
``private`` hands each its own copy, as naive multi-agent code does.
"""

from __future__ import annotations

import numpy as np

from memsweep.agents.base import (
    AgentSpec,
    Backend,
    Beliefs,
    Population,
    StepInput,
    StoredModel,
    release,
)
from memsweep.world.base import ModelShape

_SPARSE = (
    "PyMDP's numpy agent takes dense numpy arrays only: scipy sparse A/B raise "
    "TypeError or fail in einsum at infer_states"
)


def _numpy_pymdp():
    """PyMDP's numpy agent class and its helpers: ``pymdp.legacy`` on 1.x, the package
    itself on 0.0.x (whose ``pymdp.agent`` is the same agent, before 1.0 moved it)."""
    import importlib.util

    if importlib.util.find_spec("pymdp.legacy") is not None:
        from pymdp.legacy import agent, utils
    else:
        from pymdp import agent, utils
    return agent.Agent, utils


def _object_array(arrays: list):
    utils = _numpy_pymdp()[1]
    holder = utils.obj_array(len(arrays))
    for index, array in enumerate(arrays):
        holder[index] = array
    return holder


class NumpyPopulation(Population):
    operations = ("infer_states", "infer_policies", "sample_action")

    def __init__(self, model: StoredModel, spec: AgentSpec):
        Agent = _numpy_pymdp()[0]

        def arrays():
            if spec.sharing == "shared":
                return model.As, model.Bs
            return [a.copy() for a in model.As], [b.copy() for b in model.Bs]

        # Only a factorised world names its dependencies: PyMDP then takes another
        # (factorised) inference path, which memsweep's grid world must not.
        factors = (
            dict(A_factor_list=model.A_dependencies, B_factor_list=model.B_dependencies)
            if model.factorised
            else {}
        )
        self.agents = []
        for _ in range(spec.agents):
            a, b = arrays()
            self.agents.append(
                Agent(
                    A=_object_array(a),
                    B=_object_array(b),
                    C=_object_array(model.Cs),
                    D=_object_array(model.Ds),
                    policy_len=spec.policy_len,
                    **factors,
                )
            )
        self._own_action: tuple[int, ...] = ()

    def call(self, operation: str, step: StepInput) -> None:
        if operation == "infer_states":
            for agent in self.agents:
                agent.infer_states(list(step.observation))
        elif operation == "infer_policies":
            for agent in self.agents:
                agent.infer_policies()
        elif operation == "sample_action":
            forced = step.reference_action
            for index, agent in enumerate(self.agents):
                action = agent.sample_action()
                if index == 0:
                    self._own_action = tuple(int(a) for a in action)
                if forced is not None:  # teacher forcing: the next prior follows the reference
                    agent.action = np.array(forced, dtype=float)
        else:
            raise ValueError(f"unknown operation {operation!r}")

    def beliefs(self) -> Beliefs:
        agent = self.agents[0]
        return Beliefs(
            qs=np.concatenate([np.asarray(q, dtype=np.float64) for q in agent.qs]),
            q_pi=np.asarray(agent.q_pi, dtype=np.float64).copy(),
            action=self._own_action,
        )

    def reset(self) -> None:
        for agent in self.agents:
            agent.reset()
            agent.action = None
            agent.prev_actions = None


class PymdpNumpy(Backend):
    name = "pymdp-numpy"
    storages = {"dense": None, "csr": _SPARSE, "csc": _SPARSE, "coo": _SPARSE}
    dtypes = {
        "float64": None,
        "float32": None,
        "float16": "PyMDP's numpy agent refuses float16 models: its np.allclose "
        "normalisation check fails ('A matrix is not normalized')",
    }
    stack_b = True  # PyMDP's (N, N, 5) B
    libraries = {"pymdp_version": "inferactively-pymdp", "numpy_version": "numpy"}
    import_mb = 260.0  # PyMDP's legacy package pulls pandas, matplotlib and seaborn

    def world_reason(self, shape: ModelShape, version: str) -> str | None:
        if shape.factors > 1 and release(version) < (1,):
            return (
                f"PyMDP {version}'s numpy agent takes no factor dependencies "
                "(A_factor_list came with 1.0.0): it runs one-factor worlds only"
            )
        return None

    def load(self) -> None:
        _numpy_pymdp()  # also pulls pandas, matplotlib, seaborn

    def build_agents(self, model: StoredModel, spec: AgentSpec) -> Population:
        return NumpyPopulation(model, spec)


BACKEND = PymdpNumpy()
