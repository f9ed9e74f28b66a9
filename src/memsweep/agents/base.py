"""The protocol every backend implements, and the model it is built from.

A backend is one module in ``memsweep/agents/`` holding one :class:`Backend`
subclass instance named ``BACKEND``. It declares what it supports as data
(``storages``, ``dtypes``, and :meth:`Backend.unsupported_reason` for the
rest), imports its heavy libraries only in :meth:`Backend.load` (so planning a
sweep stays cheap), and builds a :class:`Population`: ``agents`` agents alive
at once, each with its own beliefs, holding one model (``shared``) or a copy
each (``private``).

The harness (:mod:`memsweep.harness.measure`) drives a population one step at a time:
for each operation in ``population.operations`` it calls
``population.call(operation, step)`` once, which runs that operation for every
agent. ``step.reference_action`` is the action the reference agent took at
this step; after choosing its own action each agent continues from the
reference's (teacher forcing), so one differing choice does not send a
variant's beliefs down another path and every step stays comparable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from memsweep.world import storage as st
from memsweep.world.gridworld import (
    GridWorld,
    initial_beliefs,
    observation_matrix,
    preferences,
    transition_matrices,
)


@dataclass(frozen=True)
class AgentSpec:
    """What a backend builds: how many agents, how they hold the model, how far they plan."""

    storage: str
    dtype: str
    agents: int
    sharing: str  # private | shared
    policy_len: int


@dataclass(frozen=True)
class StepInput:
    observation: int
    reference_action: int | None = None  # None: follow the agent's own action (closed loop)


@dataclass(frozen=True)
class Beliefs:
    """Agent 0 after one step, as float64 copies: q(s), q(π) and its own chosen action."""

    qs: np.ndarray
    q_pi: np.ndarray
    action: int


@dataclass
class StoredModel:
    """A, B, C, D in one storage format and dtype. ``B`` is a list, one matrix per action,
    or a dense (N, N, actions) array where ``stack_b`` was asked for."""

    A: object
    B: object
    C: np.ndarray
    D: np.ndarray
    storage: str
    dtype: str

    def arrays(self) -> dict[str, object]:
        return {"A": self.A, "B": self.B, "C": self.C, "D": self.D}

    def nbytes(self) -> dict[str, int]:
        def size(value):
            return sum(map(st.nbytes, value)) if isinstance(value, list) else st.nbytes(value)

        return {name: size(value) for name, value in self.arrays().items()}

    def zero_fraction(self) -> dict[str, float]:
        def fraction(value):
            if isinstance(value, list):
                return float(np.mean([st.zero_fraction(m) for m in value]))
            return st.zero_fraction(value)

        return {name: fraction(value) for name, value in self.arrays().items()}


def build_model(world: GridWorld, storage: str, dtype: str, stack_b: bool = False) -> StoredModel:
    """The grid world's model in ``storage``/``dtype``, columns normalised in ``dtype``."""
    kind = np.dtype(dtype)
    a = st.store(observation_matrix(world), storage, dtype, normalize=True)
    matrices = transition_matrices(world)
    if stack_b:
        if storage != "dense":
            raise st.UnsupportedStorage("a stacked B is dense by definition")
        b = np.empty((world.states, world.states, len(matrices)), dtype=kind)
        for index, matrix in enumerate(matrices):
            b[:, :, index] = st.store(matrix, "dense", dtype, normalize=True)
    else:
        b = [st.store(matrix, storage, dtype, normalize=True) for matrix in matrices]
    d = initial_beliefs(world).astype(kind)
    d /= d.sum(dtype=kind)
    return StoredModel(a, b, preferences(world).astype(kind), d, storage, dtype)


class Population(ABC):
    """``agents`` live agents of one backend. Operations run for every agent at once."""

    operations: ClassVar[tuple[str, ...]]
    layout: str = "objects"  # how agents are held; recorded in every row

    @abstractmethod
    def call(self, operation: str, step: StepInput) -> None:
        """Run ``operation`` for every agent."""

    @abstractmethod
    def beliefs(self) -> Beliefs:
        """Agent 0's beliefs after the last complete step."""

    @abstractmethod
    def reset(self) -> None:
        """Start every agent afresh (beliefs back to D), keeping the model."""


class Backend(ABC):
    """A family of agents; one instance named ``BACKEND`` per backend module."""

    name: ClassVar[str]
    # storage -> None (supported) or the reason it is not; same for dtypes.
    storages: ClassVar[dict[str, str | None]]
    dtypes: ClassVar[dict[str, str | None]]
    # Probes that cannot see this backend's memory (pymdp-jax keeps its arrays in XLA
    # buffers, which bypass Python's allocator): the report computes no saving across it.
    blind_probes: ClassVar[tuple[str, ...]] = ()

    def unsupported_reason(self, spec: AgentSpec) -> str | None:
        """Why this backend cannot run ``spec``, or None. Must not import heavy modules."""
        for label, table, key in (
            ("storage", self.storages, spec.storage),
            ("dtype", self.dtypes, spec.dtype),
        ):
            if key not in table:
                return f"{self.name}: unknown {label} {key!r}"
            if table[key]:
                return table[key]
        return st.unsupported_reason(spec.storage, spec.dtype)

    def versions(self) -> dict[str, str]:
        """Versions of the libraries this backend runs on (for provenance)."""
        return {}

    @abstractmethod
    def load(self) -> None:
        """Import the backend's libraries (the measured ``import`` phase)."""

    def build_model(self, world: GridWorld, spec: AgentSpec) -> StoredModel:
        """The model in the spec's storage and dtype, as this backend's agents take it."""
        return build_model(world, spec.storage, spec.dtype)

    @abstractmethod
    def build_agents(self, model: StoredModel, spec: AgentSpec) -> Population:
        """``spec.agents`` agents on ``model``: sharing it, or each with a copy (``private``)."""
