"""The grid-world generative model (A, B, C, D) and its seeded environment.

A G×G grid has N = G² hidden states (the agent's cell, ``row * G + col``) and
N observations (the cell it sees). Five actions: stay, up, down, left, right.

* ``A[o, s]`` = P(o | s). The agent sees its own cell with probability
  ``1 - obs_noise``; the rest is spread over every cell (``uniform``: A is
  dense) or over the 4-neighbours of ``s`` (``local``: A is sparse).
* ``B[a][s', s]`` = P(s' | s, a). A move succeeds with ``move_success``, else
  the agent stays; moving into a wall is staying.
* ``C`` log-preferences over observations: ``goal_preference`` for the goal
  cell (bottom-right), 0 elsewhere. ``D`` is uniform: the agent does not know
  where it starts (the environment starts it at the top-left cell).

Matrices are built sparse in float64 (a 60×60 grid's dense B would be 518 MB
before any agent exists); :mod:`memsweep.world.storage` casts and normalises them in
the dtype a job asks for. Everything here is a pure function of the settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from memsweep.world.base import ModelShape, World, WorldSettings, settings_from
from memsweep.world.checks import Checks
from memsweep.world.model import Model

ACTIONS = ("stay", "up", "down", "left", "right")
_MOVES = {"stay": (0, 0), "up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
NOISE_KINDS = ("local", "uniform")
# The settings' valid ranges, in JSON schema's words: GridWorld checks them, and a sweep
# config's schema states them (through memsweep.plan.jobs.Job).
RANGES = {
    "grid": {"minimum": 2},
    "obs_noise": {"minimum": 0, "exclusiveMaximum": 1},
    "move_success": {"exclusiveMinimum": 0, "maximum": 1},
}
_CHECKS = Checks(RANGES, {"noise_kind": NOISE_KINDS})


@dataclass(frozen=True)
class GridWorld:
    """Settings of one grid world; equal settings give bit-identical arrays and traces."""

    grid: int
    obs_noise: float = 0.1
    noise_kind: str = "local"
    move_success: float = 0.9
    goal_preference: float = 4.0
    seed: int = 0

    def __post_init__(self):
        _CHECKS.check(self)

    @property
    def states(self) -> int:
        return self.grid * self.grid

    @property
    def goal(self) -> int:
        return self.states - 1

    def as_dict(self) -> dict:
        return asdict(self)


def _neighbour(grid: int, state: int, action: str) -> int:
    return int(_targets(grid, action)[state])


def _targets(grid: int, action: str) -> np.ndarray:
    """For every state, the state ``action`` leads to (itself where a wall is in the way)."""
    row, col = np.divmod(np.arange(grid * grid), grid)
    d_row, d_col = _MOVES[action]
    row2, col2 = row + d_row, col + d_col
    inside = (row2 >= 0) & (row2 < grid) & (col2 >= 0) & (col2 < grid)
    return np.where(inside, row2 * grid + col2, row * grid + col)


def observation_matrix(world: GridWorld):
    """A as float64: sparse (CSC) for local noise, dense for uniform noise."""
    import scipy.sparse as sp  # here, not at the top: planning a sweep needs no scipy

    n, noise = world.states, world.obs_noise
    if world.noise_kind == "uniform":
        return (1.0 - noise) * np.eye(n) + noise / n
    states = np.arange(n)
    if noise == 0:
        return sp.csc_array((np.ones(n), (states, states)), shape=(n, n))
    # Vectorised on purpose: Python lists of N·5 floats would cost more memory than
    # the sparse model itself, inside the measured build.
    neighbours = np.stack([_targets(world.grid, a) for a in ACTIONS[1:]])  # (4, N)
    real = neighbours != states
    count = real.sum(axis=0)
    rows = np.concatenate([states, neighbours[real]])
    cols = np.concatenate([states, np.broadcast_to(states, neighbours.shape)[real]])
    share = (noise / count)[np.nonzero(real)[1]]  # each neighbour's share of the noise
    vals = np.concatenate([np.full(n, 1.0 - noise), share])
    return sp.csc_array((vals, (rows, cols)), shape=(n, n))


def transition_matrices(world: GridWorld) -> list:
    """B as one float64 CSC matrix per action (scipy csc_array), columns = the state moved from."""
    import scipy.sparse as sp

    n, p = world.states, world.move_success
    states = np.arange(n)
    matrices = []
    for action in ACTIONS:
        target = _targets(world.grid, action)
        moves = target != states
        rows = np.concatenate([target[moves], states])
        cols = np.concatenate([states[moves], states])
        vals = np.concatenate([np.full(moves.sum(), p), np.where(moves, 1.0 - p, 1.0)])
        matrices.append(sp.csc_array((vals, (rows, cols)), shape=(n, n)))
    return matrices


def preferences(world: GridWorld) -> np.ndarray:
    c = np.zeros(world.states)
    c[world.goal] = world.goal_preference
    return c


def initial_beliefs(world: GridWorld) -> np.ndarray:
    return np.full(world.states, 1.0 / world.states)


class Environment:
    """The seeded world the reference agent acts in: true state, noisy observations."""

    def __init__(self, world: GridWorld):
        self.world = world
        self.rng = np.random.default_rng(world.seed)
        self._a = observation_matrix(world)
        self.state = 0

    def _observe(self) -> int:
        column = self._a[:, [self.state]]
        column = column.toarray().ravel() if hasattr(column, "toarray") else column.ravel()
        cells = np.flatnonzero(column)
        return int(self.rng.choice(cells, p=column[cells] / column[cells].sum()))

    def reset(self) -> tuple[int]:
        self.state = 0
        return (self._observe(),)

    def step(self, actions) -> tuple[int]:
        target = _neighbour(self.world.grid, self.state, ACTIONS[int(actions[0])])
        if target != self.state and self.rng.random() < self.world.move_success:
            self.state = target
        return (self._observe(),)


def grid_world(settings: WorldSettings) -> GridWorld:
    return settings_from(GridWorld, settings)


class Grid(World):
    """memsweep's own grid world (the default): one factor, one modality, sparse A and B."""

    name = "grid"
    about = "memsweep's G×G grid world: one factor of G² cells, one modality, 5 actions"
    in_process = True  # numpy and scipy only

    def model(self, settings: WorldSettings) -> Model:
        world = grid_world(settings)
        return Model(
            A=[observation_matrix(world)],
            B=[transition_matrices(world)],
            C=[preferences(world)],
            D=[initial_beliefs(world)],
        )

    def shape(self, settings: WorldSettings) -> ModelShape:
        # The entries the built arrays store: A's own cell, plus (local noise) each real
        # 4-neighbour, 4·G·(G-1) of them; each B stores every cell once, plus, for each
        # move, the G·(G-1) cells it leaves (the stay action moves none).
        g, n = settings.grid, settings.grid**2
        if settings.obs_noise == 0:
            a_nonzero = n
        elif settings.noise_kind == "uniform":
            a_nonzero = n * n
        else:
            a_nonzero = n + 4 * g * (g - 1)
        b_nonzero = len(ACTIONS) * n + (len(ACTIONS) - 1) * g * (g - 1)
        return ModelShape(((n, n),), ((n, n, len(ACTIONS)),), (a_nonzero,), (b_nonzero,))

    def environment(self, model: Model, settings: WorldSettings) -> Environment:
        return Environment(grid_world(settings))


WORLDS = (Grid(),)
