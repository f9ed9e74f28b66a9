"""What a world is: a generative model of any size the sweep asks for, and its environment.

A world is one module in ``memsweep/world/`` holding :class:`World` instances (the
registry, :mod:`memsweep.world.registry`, lists them), as a backend is one module in
``memsweep/agents/``. Given a job's :class:`WorldSettings` it returns its model in
float64 (:class:`memsweep.world.model.Model`), a seeded environment that the reference
agent acts in, and, cheaply (the plan asks at Snakemake's parse time), the shapes of
its arrays.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Protocol

from memsweep.world.model import Model

DEFAULT_WORLD = "grid"


def settings_from(kind: type, source: object):
    """A ``kind`` (a dataclass of settings) from ``source``'s attributes of the same names;
    one ``source`` lacks keeps its default. Each setting is declared once, on its class."""
    return kind(
        **{f.name: getattr(source, f.name) for f in fields(kind) if hasattr(source, f.name)}
    )


@dataclass(frozen=True)
class WorldSettings:
    """Every setting a world may read; equal settings give bit-identical models and traces.

    ``grid`` is the sweep's size: the side G of a G×G grid where the world is one. The
    noise and move settings are the grid world's; a world that has no such thing ignores
    them (its module says which it reads).
    """

    world: str = DEFAULT_WORLD
    grid: int = 5
    obs_noise: float = 0.1
    noise_kind: str = "local"
    move_success: float = 0.9
    goal_preference: float = 4.0
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelShape:
    """The shapes of a model's arrays, and how many entries of each are non-zero (None:
    not known before it is built, counted as every entry)."""

    A: tuple[tuple[int, ...], ...]
    B: tuple[tuple[int, ...], ...]
    A_nonzero: tuple[int | None, ...] = ()
    B_nonzero: tuple[int | None, ...] = ()

    @property
    def factors(self) -> int:
        return len(self.B)

    @property
    def modalities(self) -> int:
        return len(self.A)

    @property
    def states(self) -> tuple[int, ...]:
        return tuple(b[0] for b in self.B)

    @property
    def actions(self) -> tuple[int, ...]:
        return tuple(b[-1] for b in self.B)

    def arrays(self):
        """(name, shape as the 2-D matrix storage keeps it, non-zeros) of every A[m], B[f]:
        an array of more than two axes is stored as its (rows, every other axis) unfolding;
        B is one such matrix per action."""
        for kind, shapes, nonzero in (("A", self.A, self.A_nonzero), ("B", self.B, self.B_nonzero)):
            for index, shape in enumerate(shapes):
                count = nonzero[index] if index < len(nonzero) else None
                if kind == "B":
                    matrix, copies = (shape[0], math.prod(shape[1:-1])), shape[-1]
                else:
                    matrix, copies = (shape[0], math.prod(shape[1:])), 1
                full = matrix[0] * matrix[1] * copies
                yield f"{kind}[{index}]", matrix, copies, full if count is None else count

    @classmethod
    def of(cls, model: Model) -> ModelShape:
        def shape(array):
            if isinstance(array, list):
                return (*array[0].shape, len(array))
            return tuple(int(n) for n in array.shape)

        def nonzero(array):
            if isinstance(array, list):
                return sum(nonzero(matrix) for matrix in array)
            return int(array.nnz) if hasattr(array, "nnz") else int((array != 0).sum())

        return cls(
            tuple(map(shape, model.A)),
            tuple(map(shape, model.B)),
            tuple(map(nonzero, model.A)),
            tuple(map(nonzero, model.B)),
        )


class Environment(Protocol):
    """The world the reference agent acts in: one observation index per modality."""

    def reset(self) -> tuple[int, ...]: ...

    def step(self, actions: tuple[int, ...]) -> tuple[int, ...]: ...


class World(ABC):
    """One world; an instance per world (several may share a module)."""

    name: ClassVar[str]
    about: ClassVar[str]  # one line: what it is, for the docs and the report
    # Whether building the model imports only numpy and scipy: then the measured process
    # builds it in its build window. Otherwise (a world PyMDP builds with JAX, a user's
    # function) the reference's process builds it and the measured process reads its
    # arrays from the reference's file, so that no backend pays an import it does not make.
    in_process: ClassVar[bool] = False
    # Why the world has one size whatever the sweep's grid (None: it scales with grid).
    fixed_size: ClassVar[str | None] = None

    @abstractmethod
    def model(self, settings: WorldSettings) -> Model:
        """The model at ``settings``, in float64."""

    def shape(self, settings: WorldSettings) -> ModelShape:
        """Its arrays' shapes, without building it where the world can say them cheaply
        (the plan asks for every job, at Snakemake's parse time); built once else."""
        return _built_shape(self, settings)

    def environment(self, model: Model, settings: WorldSettings) -> Environment:
        """The seeded environment: by default the model's own generative process."""
        from memsweep.world.process import GenerativeProcess

        return GenerativeProcess(model, settings.seed)

    def size_reason(self, settings: WorldSettings) -> str | None:
        """Why this world cannot be built at ``settings``' size, or None."""
        return None


@functools.lru_cache(maxsize=256)
def _built_shape(world: World, settings: WorldSettings) -> ModelShape:
    return ModelShape.of(world.model(settings))
