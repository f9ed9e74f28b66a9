"""The float64 dense PyMDP numpy agent, closed loop on its world's seeded environment.

Its trace (observations, actions, q(s), q(π) per step) is what every variant replays
and is scored against. For a world that is not built in the measured process (one PyMDP
builds with JAX, a user's function: ``World.in_process``), the reference's file also
holds the world's float64 model, which the measured job reads instead of building it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memsweep.agents import AgentSpec, StepInput
from memsweep.files import atomic
from memsweep.plan.jobs import REFERENCE_SPEC
from memsweep.world import registry
from memsweep.world.base import WorldSettings
from memsweep.world.model import Model

_MODEL = "model_"  # the prefix of the model's entries in the reference's file


@dataclass
class Reference:
    observations: np.ndarray  # (steps, modalities) int
    actions: np.ndarray  # (steps, factors) int
    qs: np.ndarray  # (steps, states summed over factors) float64: factor after factor
    q_pi: np.ndarray  # (steps, policies) float64
    world: WorldSettings
    policy_len: int
    factor_states: tuple[int, ...] = ()  # states of each factor: how qs splits
    model: Model | None = field(default=None, repr=False)  # where not built in process
    path: Path | None = None  # the file it was loaded from

    def __post_init__(self):
        if not self.factor_states:
            self.factor_states = (self.qs.shape[1],)

    @property
    def steps(self) -> int:
        return len(self.observations)

    def inputs(self, index: int) -> StepInput:
        """Step ``index``'s observation and the reference's action, as a variant replays them."""
        return StepInput(
            tuple(int(o) for o in self.observations[index]),
            tuple(int(a) for a in self.actions[index]),
        )

    def save(self, path: str | os.PathLike) -> Path:
        settings = {f"world_{k}": v for k, v in self.world.as_dict().items()}
        model = self.model.save(None, _MODEL) if self.model is not None else {}
        with atomic(path, suffix=".npz") as temporary:  # np.savez would append .npz
            np.savez(
                temporary,
                observations=self.observations,
                actions=self.actions,
                qs=self.qs,
                q_pi=self.q_pi,
                policy_len=self.policy_len,
                factor_states=np.array(self.factor_states),
                **settings,
                **model,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Reference:
        """The trace (not the model: :meth:`load_model` reads it where the job builds it)."""
        with np.load(path) as data:
            world = WorldSettings(
                **{k[len("world_") :]: data[k].item() for k in data.files if k.startswith("world_")}
            )
            return cls(
                observations=data["observations"],
                actions=data["actions"],
                qs=data["qs"],
                q_pi=data["q_pi"],
                world=world,
                policy_len=int(data["policy_len"]),
                factor_states=tuple(int(n) for n in data["factor_states"]),
                path=Path(path),
            )

    def load_model(self) -> Model:
        """The world's float64 model as the reference's process built it."""
        if self.path is None:
            raise ValueError("this reference was not loaded from a file")
        return Model.load(self.path, _MODEL)

    def check_matches(self, world: WorldSettings, policy_len: int, steps: int) -> None:
        """Refuse a reference made for another model: its trace would score the wrong thing."""
        if world != self.world or policy_len != self.policy_len or steps > self.steps:
            raise ValueError(
                f"reference is for {self.world} policy_len={self.policy_len} steps={self.steps}, "
                f"not {world} policy_len={policy_len} steps={steps}"
            )


def make_reference(settings: WorldSettings, policy_len: int, steps: int) -> Reference:
    from memsweep.agents import get

    backend = get(REFERENCE_SPEC["backend"])
    backend.load()
    spec = AgentSpec(
        REFERENCE_SPEC["storage"], REFERENCE_SPEC["dtype"], 1, REFERENCE_SPEC["sharing"], policy_len
    )
    world = registry.get(settings.world)
    model = world.model(settings)
    population = backend.build_agents(backend.build_model(model, spec), spec)
    np.random.seed(settings.seed)  # PyMDP breaks near-ties with the global numpy RNG
    environment = world.environment(model, settings)
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
        np.array(observations),
        np.array(actions),
        np.array(qs),
        np.array(q_pi),
        settings,
        policy_len,
        tuple(model.states),
        model=None if world.in_process else model,
    )
