"""The protocol every backend implements, and the model it is built from.

A backend is one module in ``memsweep/agents/`` holding one :class:`Backend`
subclass instance named ``BACKEND``. It declares what it supports as data
(``storages``, ``dtypes``, and :meth:`Backend.unsupported_reason` for the
rest) and the terms of its memory prediction (``import_mb``, ``predict_mb``),
imports its heavy libraries only in :meth:`Backend.load` (so planning a
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
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from memsweep.world import storage as st
from memsweep.world.base import ModelShape
from memsweep.world.gridworld import ACTIONS
from memsweep.world.model import Model

# The PyMDP releases a job may run on (its ``pymdp_version``): the one pyproject.toml pins
# runs in memsweep's own environment, each other in an environment of its own
# (:mod:`memsweep.harness.envs`). The 0.0.x line is represented by its last release: the
# earlier ones (0.0.1 … 0.0.7) share its API and were never tried with today's numpy.
PYMDP_DISTRIBUTION = "inferactively-pymdp"
PYMDP_RELEASES = ("0.0.7.1", "1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4")
PYMDP_PINNED = "1.0.4"


def release(version: str) -> tuple[int, ...]:
    """``"0.0.7.1"`` -> ``(0, 0, 7, 1)``: releases in the order they were made."""
    return tuple(int(part) for part in version.split("."))


def accepted(function, **arguments) -> dict:
    """The ``arguments`` that ``function``'s signature names: a release of PyMDP whose
    ``Agent`` lacks one of them runs with its own default for it, instead of a TypeError
    (``**kwargs`` in the signature takes them all)."""
    import inspect

    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return arguments
    return {name: value for name, value in arguments.items() if name in parameters}


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
    observation: tuple[int, ...]  # one index per modality
    reference_action: tuple[int, ...] | None = None  # one per factor; None: closed loop


@dataclass(frozen=True)
class Beliefs:
    """Agent 0 after one step, as float64 copies: q(s) (every factor's, one after the
    other), q(π) and its own chosen action (one per factor)."""

    qs: np.ndarray
    q_pi: np.ndarray
    action: tuple[int, ...]


@dataclass
class StoredModel:
    """A, B, C, D in one storage format and dtype: a list each (one array per modality or
    factor), with the factors each depends on. ``B[f]`` is an array (states, …, actions)
    where ``stack_b`` was asked for, else a list of one matrix per action.

    ``A``, ``B``, ``C`` and ``D`` (no suffix) are the one array of a model with one factor
    and one modality, for a backend that runs only such models."""

    As: list
    Bs: list
    Cs: list
    Ds: list
    storage: str
    dtype: str
    A_dependencies: list[list[int]] = field(default_factory=lambda: [[0]])
    B_dependencies: list[list[int]] = field(default_factory=lambda: [[0]])
    factorised: bool = False  # PyMDP must be told the dependencies (see Model.factorised)

    def _single(self, arrays: list):
        if len(self.As) != 1 or len(self.Bs) != 1:
            raise ValueError("this model has several factors or modalities: use As, Bs, Cs, Ds")
        return arrays[0]

    A = property(lambda self: self._single(self.As))
    B = property(lambda self: self._single(self.Bs))
    C = property(lambda self: self._single(self.Cs))
    D = property(lambda self: self._single(self.Ds))

    def arrays(self) -> dict[str, list]:
        return {"A": self.As, "B": self.Bs, "C": self.Cs, "D": self.Ds}

    def nbytes(self) -> dict[str, int]:
        """Exact bytes of A, B, C and D, each summed over its arrays."""
        return {name: sum(map(_size, value)) for name, value in self.arrays().items()}

    def zero_fraction(self) -> dict[str, float]:
        return {name: _zeros(value) for name, value in self.arrays().items()}

    @property
    def several_arrays(self) -> bool:
        """Whether A or B holds more than one array (a world of several modalities or
        factors), so that each is worth a figure of its own."""
        return len(self.As) > 1 or len(self.Bs) > 1

    def array_nbytes(self) -> dict[str, int]:
        """Exact bytes of every A[m] and B[f] on its own."""
        return self._each_array(_size)

    def array_zero_fraction(self) -> dict[str, float]:
        return self._each_array(_zeros)

    def _each_array(self, measure) -> dict[str, float]:
        arrays = self.arrays()
        return {
            f"{name}[{index}]": measure(array)
            for name in ("A", "B")
            for index, array in enumerate(arrays[name])
        }


def _size(value) -> int:
    return sum(map(_size, value)) if isinstance(value, list) else st.nbytes(value)


def _zeros(value) -> float:
    """Zero fraction of an array, or the mean over a list of them (per-action matrices)."""
    if isinstance(value, list):
        return float(np.mean([_zeros(array) for array in value]))
    return st.zero_fraction(value)


def _store_b(b, storage: str, dtype: str, stack_b: bool):
    """One factor's B in ``storage``/``dtype``: stacked (states, …, actions) or a list of
    one matrix per action, whichever way the world gave it."""
    if stack_b:
        if storage != "dense":
            raise st.UnsupportedStorage("a stacked B is dense by definition")
        if isinstance(b, list):  # one matrix per action -> (N, N, actions), slice by slice
            stacked = np.empty((*b[0].shape, len(b)), dtype=np.dtype(dtype))
            for index, matrix in enumerate(b):
                stacked[..., index] = st.store(matrix, "dense", dtype, normalize=True)
            return stacked
        return st.store(b, "dense", dtype, normalize=True)
    if not isinstance(b, list):
        if b.ndim != 3:
            raise st.UnsupportedStorage(
                f"a B of {b.ndim} axes (a factor that depends on others) has no per-action matrices"
            )
        b = [b[:, :, action] for action in range(b.shape[-1])]
    return [st.store(matrix, storage, dtype, normalize=True) for matrix in b]


def build_model(world: Model, storage: str, dtype: str, stack_b: bool = False) -> StoredModel:
    """``world``'s float64 model in ``storage``/``dtype``, columns normalised in ``dtype``."""
    kind = np.dtype(dtype)
    a = [st.store(matrix, storage, dtype, normalize=True) for matrix in world.A]
    b = [_store_b(matrix, storage, dtype, stack_b) for matrix in world.B]
    c = [np.asarray(c).astype(kind) for c in world.C]
    d = []
    for prior in world.D:
        prior = np.asarray(prior).astype(kind)
        prior /= prior.sum(dtype=kind)
        d.append(prior)
    return StoredModel(
        a,
        b,
        c,
        d,
        storage,
        dtype,
        [list(deps) for deps in world.A_dependencies],
        [list(deps) for deps in world.B_dependencies],
        world.factorised,
    )


# How agents are held when each is its own object; recorded in every row (``layout``).
OBJECTS = "objects"


class Population(ABC):
    """``agents`` live agents of one backend. Operations run for every agent at once."""

    operations: ClassVar[tuple[str, ...]]
    layout: str = OBJECTS  # how agents are held: its backend's Backend.layout(spec)

    @abstractmethod
    def call(self, operation: str, step: StepInput) -> None:
        """Run ``operation`` for every agent."""

    @abstractmethod
    def beliefs(self) -> Beliefs:
        """Agent 0's beliefs after the last complete step."""

    @abstractmethod
    def reset(self) -> None:
        """Start every agent afresh (beliefs back to D), keeping the model."""

    def compiled_memory(self, step: StepInput) -> dict[str, dict[str, int]]:
        """XLA's memory plan of each program the population compiles, for ``step``'s inputs:
        program -> :func:`xla_memory_plan`. Empty for a backend that compiles nothing."""
        return {}


# CompiledMemoryStats attribute -> the metric of its row (bytes).
XLA_SIZES = {
    "argument_size_in_bytes": "argument_bytes",
    "output_size_in_bytes": "output_bytes",
    "alias_size_in_bytes": "alias_bytes",
    "temp_size_in_bytes": "temp_bytes",
    "generated_code_size_in_bytes": "generated_code_bytes",
}


def xla_memory_plan(compiled) -> dict[str, int]:
    """What XLA planned for one compiled program (a ``jax.stages.Compiled``), by metric.

    ``temp_bytes`` is the scratch a call needs beyond its arguments and outputs: the
    per-call temporaries that a process probe sees only as a peak, if at all.
    """
    stats = compiled.memory_analysis()
    return {metric: int(getattr(stats, name)) for name, metric in XLA_SIZES.items()}


class Backend(ABC):
    """A family of agents; one instance named ``BACKEND`` per backend module.

    Everything the rest of memsweep knows about a backend is declared here, as data or
    cheap methods (none imports the backend's libraries): its name, what it supports
    and why not the rest, the probes blind to its memory, the libraries it runs on, how
    it holds its agents, and the terms of its memory prediction.
    """

    name: ClassVar[str]
    # storage -> None (supported) or the reason it is not; same for dtypes.
    storages: ClassVar[dict[str, str | None]]
    dtypes: ClassVar[dict[str, str | None]]
    # Probes that cannot see this backend's memory (pymdp-jax keeps its arrays in XLA
    # buffers, which bypass Python's allocator): the report computes no saving across it.
    blind_probes: ClassVar[tuple[str, ...]] = ()
    # B as one dense (N, N, actions) array, as PyMDP takes it, not a matrix per action.
    stack_b: ClassVar[bool] = False
    # Provenance column -> the distribution whose version it records (see versions()).
    libraries: ClassVar[dict[str, str]] = {}
    # Resident MB of a job's process once the backend is imported: the fixed per-process
    # term of the prediction, measured on the reference machine (the report's import
    # rows). The default is a guess for a backend not measured yet.
    import_mb: ClassVar[float] = 300.0

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

    def world_reason(self, shape: ModelShape, version: str) -> str | None:
        """Why this backend cannot run a world of ``shape`` on PyMDP ``version``, or None."""
        return None

    def pymdp_reason(self, version: str) -> str | None:
        """Why this backend cannot run on PyMDP ``version`` (one of :data:`PYMDP_RELEASES`),
        or None. A backend that runs on no PyMDP (no ``pymdp_version`` among its
        ``libraries``) would measure the same thing on every release: it runs once, with
        the pinned one."""
        if version != PYMDP_PINNED and "pymdp_version" not in self.libraries:
            return (
                f"{self.name} does not use PyMDP: it runs once, with the pinned "
                f"{PYMDP_PINNED} (the same agents on every release)"
            )
        return None

    def versions(self) -> dict[str, str | None]:
        """Versions of the libraries this backend runs on, keyed by provenance column
        (e.g. ``pymdp_version``); None for one not installed. Reads package metadata
        only: no import of the libraries themselves."""
        from importlib.metadata import PackageNotFoundError, version

        found = {}
        for column, distribution in self.libraries.items():
            try:
                found[column] = version(distribution)
            except PackageNotFoundError:
                found[column] = None
        return found

    @classmethod
    def layout(cls, spec: AgentSpec) -> str:
        """How this backend holds ``spec``'s agents (the ``layout`` column)."""
        return OBJECTS

    # The memory prediction (MB), term by term. Class methods, so that the plan can ask
    # them of the base class for a backend it does not know.
    @classmethod
    def predict_mb(cls, spec: AgentSpec, states: int, model_mb: float) -> float:
        """Predicted peak resident memory of a process that runs ``spec`` (MB).

        ``model_mb`` is one copy of A + B + C + D in the spec's storage and dtype. The
        sum: the import, the model copies, every agent's beliefs over its policies and
        the largest per-call temporary.
        """
        return (
            cls.import_mb
            + cls.model_copies(spec) * model_mb
            + cls.beliefs_mb(spec, states)
            + cls.temporaries_mb(spec, states, model_mb)
        )

    @classmethod
    def model_copies(cls, spec: AgentSpec) -> int:
        """Copies of the model the process holds: the one built, plus one an agent if private."""
        return 1 + (spec.agents if spec.sharing == "private" else 0)

    @classmethod
    def beliefs_mb(cls, spec: AgentSpec, states: int) -> float:
        """Every agent's q(s) per policy and depth, in float64, and a few more N-vectors."""
        policies = len(ACTIONS) ** spec.policy_len
        return spec.agents * (policies * (spec.policy_len + 1) + 4) * states * 8 / 1e6

    @classmethod
    def temporaries_mb(cls, spec: AgentSpec, states: int, model_mb: float) -> float:
        """The largest per-call temporary: two models' worth from a dense model (PyMDP's
        numpy agent builds N×N arrays), none from a sparse one (vectors only)."""
        return 2 * model_mb if spec.storage == "dense" else 0.0

    @abstractmethod
    def load(self) -> None:
        """Import the backend's libraries (the measured ``import`` phase)."""

    def build_model(self, world: Model, spec: AgentSpec) -> StoredModel:
        """The world's model in the spec's storage and dtype, as this backend's agents take it."""
        return build_model(world, spec.storage, spec.dtype, stack_b=self.stack_b)

    @abstractmethod
    def build_agents(self, model: StoredModel, spec: AgentSpec) -> Population:
        """``spec.agents`` agents on ``model``: sharing it, or each with a copy (``private``)."""
