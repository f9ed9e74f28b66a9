"""The float64 dense PyMDP numpy agent, closed loop on the seeded environment.

Its trace (observations, actions, q(s), q(π) per step) is what every variant
replays and is scored against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memsweep.agents import AgentSpec, StepInput
from memsweep.files import atomic
from memsweep.plan.jobs import REFERENCE_SPEC
from memsweep.world.gridworld import Environment, GridWorld


@dataclass
class Reference:
    observations: np.ndarray  # (steps,) int
    actions: np.ndarray  # (steps,) int
    qs: np.ndarray  # (steps, N) float64
    q_pi: np.ndarray  # (steps, policies) float64
    world: GridWorld
    policy_len: int

    @property
    def steps(self) -> int:
        return len(self.observations)

    def save(self, path: str | os.PathLike) -> Path:
        settings = {f"world_{k}": v for k, v in self.world.as_dict().items()}
        with atomic(path, suffix=".npz") as temporary:  # np.savez would append .npz
            np.savez(
                temporary,
                observations=self.observations,
                actions=self.actions,
                qs=self.qs,
                q_pi=self.q_pi,
                policy_len=self.policy_len,
                **settings,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Reference:
        with np.load(path) as data:
            world = GridWorld(
                **{k[len("world_") :]: data[k].item() for k in data.files if k.startswith("world_")}
            )
            return cls(
                observations=data["observations"],
                actions=data["actions"],
                qs=data["qs"],
                q_pi=data["q_pi"],
                world=world,
                policy_len=int(data["policy_len"]),
            )

    def check_matches(self, world: GridWorld, policy_len: int, steps: int) -> None:
        """Refuse a reference made for another model: its trace would score the wrong thing."""
        if world != self.world or policy_len != self.policy_len or steps > self.steps:
            raise ValueError(
                f"reference is for {self.world} policy_len={self.policy_len} steps={self.steps}, "
                f"not {world} policy_len={policy_len} steps={steps}"
            )


def make_reference(world: GridWorld, policy_len: int, steps: int) -> Reference:
    from memsweep.agents import get

    backend = get(REFERENCE_SPEC["backend"])
    backend.load()
    spec = AgentSpec(
        REFERENCE_SPEC["storage"], REFERENCE_SPEC["dtype"], 1, REFERENCE_SPEC["sharing"], policy_len
    )
    population = backend.build_agents(backend.build_model(world, spec), spec)
    np.random.seed(world.seed)  # PyMDP breaks near-ties with the global numpy RNG
    environment = Environment(world)
    observation = environment.reset()
    observations, actions, qs, q_pi = [], [], [], []
    for _ in range(steps):
        step = StepInput(observation)
        for operation in population.operations:
            population.call(operation, step)
        beliefs = population.beliefs()
        observations.append(observation)
        actions.append(beliefs.action)
        qs.append(beliefs.qs)
        q_pi.append(beliefs.q_pi)
        observation = environment.step(beliefs.action)
    return Reference(
        np.array(observations), np.array(actions), np.array(qs), np.array(q_pi), world, policy_len
    )
