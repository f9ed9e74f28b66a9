"""PyMDP's own example worlds (``pymdp.envs``, PyMDP 1.0.x), built by PyMDP's code.

PyMDP builds these with JAX, in float32; memsweep takes its A, B and D as float64
(:func:`_model`) and renormalises them in the job's dtype when it stores them, as it
does its own grid world. PyMDP's environments define no preferences, so each world
here sets C (below) and says why. Their generative process is their own A, B and D
(:class:`memsweep.world.process.GenerativeProcess`, seeded: PyMDP's environments draw
with JAX keys, which a numpy reference cannot replay).

Every world here needs JAX to build, so none is built in the measured process
(``in_process`` is False): the reference's process builds it and the measured job
reads its arrays from the reference's file.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import numpy as np

from memsweep.world.base import ModelShape, World, WorldSettings
from memsweep.world.model import Model

ACTIONS = 5  # every grid here: up, down, left, right, stay (PyMDP's orders differ)


def pymdp_env(module: str, name: str):
    """``pymdp.envs.<module>.<name>``, without running ``pymdp/envs/__init__.py`` where
    it is not run yet.

    That ``__init__`` imports every environment, the T-maze's among them, whose module
    rotates three images with scipy.ndimage as it is imported: 7.5 s on one core, which
    only the T-maze uses. The package's module stands in ``sys.modules`` unexecuted while
    the one environment module is imported, and is taken out again, so that a later
    ``import pymdp.envs`` runs it whole.
    """
    package = "pymdp.envs"
    if package in sys.modules:
        return getattr(importlib.import_module(f"{package}.{module}"), name)
    stand_in = importlib.util.module_from_spec(importlib.util.find_spec(package))
    sys.modules[package] = stand_in
    try:
        return getattr(importlib.import_module(f"{package}.{module}"), name)
    finally:
        if sys.modules.get(package) is stand_in:
            del sys.modules[package]


def _model(env, preferences: list[np.ndarray]) -> Model:
    def as64(arrays):
        return [np.array(array, dtype=np.float64) for array in arrays]

    return Model(
        A=as64(env.A),
        B=as64(env.B),
        C=preferences,
        D=as64(env.D),
        A_dependencies=[list(deps) for deps in env.A_dependencies],
        B_dependencies=[list(deps) for deps in env.B_dependencies],
    )


class PymdpGrid(World):
    """``pymdp.envs.GridWorld`` on a G×G grid with its own defaults: moves always succeed,
    D uniform over the cells, a stay action. Reads ``grid``, ``goal_preference``, ``seed``.

    C: ``goal_preference`` for seeing the bottom-right cell (as in memsweep's grid world),
    so that the agents have somewhere to go."""

    name = "pymdp-grid"
    about = "PyMDP's GridWorld on a G×G grid: one factor of G² cells, identity A, 5 actions"

    def model(self, settings: WorldSettings) -> Model:
        env = pymdp_env("grid_world", "GridWorld")(shape=(settings.grid, settings.grid))
        n = settings.grid**2
        c = np.zeros(n)
        c[n - 1] = settings.goal_preference
        return _model(env, [c])

    def shape(self, settings: WorldSettings) -> ModelShape:
        n = settings.grid**2
        # A is the identity; every action either moves or stays: one entry a column.
        return ModelShape(((n, n),), ((n, n, ACTIONS),), (n,), (n * ACTIONS,))


def cue_chaining_layout(grid: int) -> dict:
    """Where PyMDP's cue-chaining world puts its cues and rewards on a G×G grid.

    PyMDP's default is a 5×7 grid; on a G×G grid the same layout is kept in proportion:
    the start at the top-left, the first cue halfway down the left edge, the four
    candidate second cues in the middle column at the top, a quarter, three quarters and
    the bottom rows (shifted one column right in the inner two), the two reward
    locations on the right edge a quarter and three quarters down. At G=5 the cues sit
    where PyMDP's default puts them. Every location is distinct from G=4.
    """

    def row(fraction: float) -> int:
        return int(round(fraction * (grid - 1)))

    middle = (grid - 1) // 2
    return dict(
        grid_shape=(grid, grid),
        start_location=(0, 0),
        cue1_location=(row(0.5), 0),
        cue2_locations=(
            (row(0.0), middle),
            (row(0.25), middle + 1),
            (row(0.75), middle + 1),
            (row(1.0), middle),
        ),
        reward_locations=((row(0.25), grid - 1), (row(0.75), grid - 1)),
    )


class CueChaining(World):
    """``pymdp.envs.CueChainingEnv`` on a G×G grid (:func:`cue_chaining_layout`): three
    factors (location: G² states; which of 4 second cues is informative; which of 2
    reward locations pays) and four modalities (location, first cue, second cue, reward).
    Reads ``grid``, ``goal_preference``, ``seed``; the hidden cue and reward conditions
    are drawn from D (uniform) by the seeded environment.

    C: ``goal_preference`` for the cheese and minus it for the shock (the reward
    modality's observations 1 and 2), as PyMDP's cue-chaining demo prefers."""

    name = "cue-chaining"
    about = "PyMDP's cue-chaining task on a G×G grid: 3 factors, 4 modalities"
    CUES, REWARDS = 4, 2

    def size_reason(self, settings: WorldSettings) -> str | None:
        if settings.grid < 4:
            return (
                "cue-chaining needs a grid of at least 4×4 for its 8 locations, "
                f"not {settings.grid}×{settings.grid}"
            )
        return None

    def model(self, settings: WorldSettings) -> Model:
        env = pymdp_env("cue_chaining", "CueChainingEnv")(**cue_chaining_layout(settings.grid))
        preferences = [np.zeros(np.shape(a)[0]) for a in env.A]
        preferences[3][1], preferences[3][2] = settings.goal_preference, -settings.goal_preference
        return _model(env, preferences)

    def shape(self, settings: WorldSettings) -> ModelShape:
        n, cues, rewards = settings.grid**2, self.CUES, self.REWARDS
        a = ((n, n), (1 + cues, n, cues), (1 + rewards, n, cues, rewards), (3, n, rewards))
        b = ((n, n, ACTIONS), (cues, cues, 1), (rewards, rewards, 1))
        # Every column of every A and B is one-hot.
        return ModelShape(
            a,
            b,
            tuple(int(np.prod(s[1:])) for s in a),
            tuple(int(np.prod(s[1:])) for s in b),
        )


class TMazeWorld(World):
    """``pymdp.envs.TMaze`` with its defaults (cue validity 0.95, reward and punishment
    certain): two factors (5 locations; reward on the left or the right arm), three
    modalities (location, reward, cue). Reads ``goal_preference`` and ``seed``.

    Its size is fixed: PyMDP's T-maze has five locations, and its generalised maze
    (``GeneralizedTMazeEnv``) is built from a hand-drawn maze matrix, not from a size.
    A sweep runs it once, at its smallest grid; every other grid is planned out with
    this reason. C: ``goal_preference`` for the reward, minus it for the punishment."""

    name = "tmaze"
    about = "PyMDP's T-maze: 2 factors (5 locations, 2 reward conditions), 3 modalities"
    fixed_size = "PyMDP's T-maze has a fixed size (5 locations, 2 reward conditions)"

    def model(self, settings: WorldSettings) -> Model:
        env = pymdp_env("tmaze", "TMaze")()
        preferences = [np.zeros(np.shape(a)[0]) for a in env.A]
        preferences[1][1], preferences[1][2] = settings.goal_preference, -settings.goal_preference
        return _model(env, preferences)

    def shape(self, settings: WorldSettings) -> ModelShape:
        return ModelShape(((5, 5), (3, 5, 2), (3, 5, 2)), ((5, 5, ACTIONS), (2, 2, 1)))


WORLDS = (PymdpGrid(), CueChaining(), TMazeWorld())
