"""The grid world: shapes, normalisation, sparsity structure, moves, seeded environment."""

import numpy as np
import pytest
import scipy.sparse as sp

from memsweep.world.gridworld import (
    ACTIONS,
    Environment,
    GridWorld,
    initial_beliefs,
    observation_matrix,
    preferences,
    transition_matrices,
)


def dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


def cell(grid: int, row: int, col: int) -> int:
    return row * grid + col


def four_neighbours(grid: int, state: int) -> set[int]:
    row, col = divmod(state, grid)
    candidates = [(row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1)]
    return {cell(grid, r, c) for r, c in candidates if 0 <= r < grid and 0 <= c < grid}


@pytest.mark.parametrize("grid", [2, 3, 7])
@pytest.mark.parametrize("noise_kind", ["local", "uniform"])
def test_shapes(grid, noise_kind):
    world = GridWorld(grid=grid, noise_kind=noise_kind)
    n = grid * grid
    assert world.states == n
    assert observation_matrix(world).shape == (n, n)
    matrices = transition_matrices(world)
    assert len(matrices) == len(ACTIONS) == 5
    assert all(b.shape == (n, n) for b in matrices)
    assert preferences(world).shape == (n,)
    assert initial_beliefs(world).shape == (n,)


@pytest.mark.parametrize("grid", [2, 3, 7])
@pytest.mark.parametrize("noise_kind", ["local", "uniform"])
@pytest.mark.parametrize("obs_noise", [0.0, 0.1, 0.5])
def test_every_column_sums_to_one(grid, noise_kind, obs_noise):
    world = GridWorld(grid=grid, noise_kind=noise_kind, obs_noise=obs_noise, move_success=0.7)
    np.testing.assert_allclose(
        dense(observation_matrix(world)).sum(axis=0), 1.0, rtol=0, atol=1e-12
    )
    for b in transition_matrices(world):
        np.testing.assert_allclose(dense(b).sum(axis=0), 1.0, rtol=0, atol=1e-12)
    assert initial_beliefs(world).sum() == pytest.approx(1.0)


def test_c_prefers_the_goal_only_and_d_is_uniform():
    world = GridWorld(grid=4, goal_preference=3.0)
    c = preferences(world)
    assert c[world.goal] == 3.0 and world.goal == 15
    assert np.count_nonzero(c) == 1
    d = initial_beliefs(world)
    assert np.all(d == d[0])


def test_local_noise_a_is_sparse_with_the_neighbour_structure():
    grid, noise = 5, 0.2
    a = observation_matrix(GridWorld(grid=grid, obs_noise=noise, noise_kind="local"))
    assert sp.issparse(a)
    a = dense(a)
    expected_neighbours = {
        cell(grid, 0, 0): 2,  # corner
        cell(grid, 4, 4): 2,  # corner
        cell(grid, 0, 2): 3,  # edge
        cell(grid, 2, 0): 3,  # edge
        cell(grid, 2, 2): 4,  # interior
        cell(grid, 1, 3): 4,  # interior
    }
    for state, count in expected_neighbours.items():
        neighbours = four_neighbours(grid, state)
        assert len(neighbours) == count
        column = a[:, state]
        assert set(np.flatnonzero(column)) == neighbours | {state}
        assert column[state] == pytest.approx(1 - noise)
        for t in neighbours:
            assert column[t] == pytest.approx(noise / count)
    # Every column: the cell itself plus its 2..4 neighbours, nothing else.
    nonzeros = np.count_nonzero(a, axis=0)
    assert nonzeros.min() == 3 and nonzeros.max() == 5
    assert np.count_nonzero(a) == grid * grid + sum(
        len(four_neighbours(grid, s)) for s in range(grid * grid)
    )


def test_local_noise_without_noise_is_the_identity():
    a = dense(observation_matrix(GridWorld(grid=3, obs_noise=0.0)))
    np.testing.assert_array_equal(a, np.eye(9))


def test_uniform_noise_a_is_dense():
    grid, noise = 4, 0.2
    a = observation_matrix(GridWorld(grid=grid, obs_noise=noise, noise_kind="uniform"))
    assert isinstance(a, np.ndarray) and not sp.issparse(a)
    n = grid * grid
    assert np.count_nonzero(a) == n * n
    np.testing.assert_allclose(np.diag(a), 1 - noise + noise / n)
    off_diagonal = a[~np.eye(n, dtype=bool)]
    np.testing.assert_allclose(off_diagonal, noise / n)


def test_b_moves_succeed_with_move_success_else_stay():
    grid, p = 4, 0.8
    b = [dense(m) for m in transition_matrices(GridWorld(grid=grid, move_success=p))]
    right, left, up, down, stay = (
        b[ACTIONS.index(a)] for a in ("right", "left", "up", "down", "stay")
    )
    s = cell(grid, 1, 1)
    column = right[:, s]
    assert column[cell(grid, 1, 2)] == pytest.approx(p)
    assert column[s] == pytest.approx(1 - p)
    assert np.count_nonzero(column) == 2
    assert left[cell(grid, 1, 0), s] == pytest.approx(p)
    assert up[cell(grid, 0, 1), s] == pytest.approx(p)
    assert down[cell(grid, 2, 1), s] == pytest.approx(p)
    np.testing.assert_array_equal(stay, np.eye(grid * grid))


@pytest.mark.parametrize(
    ("action", "row", "col"),
    [("right", 2, 3), ("left", 2, 0), ("up", 0, 1), ("down", 3, 1), ("right", 3, 3)],
)
def test_b_wall_means_staying_with_certainty(action, row, col):
    grid = 4
    b = dense(transition_matrices(GridWorld(grid=grid, move_success=0.8))[ACTIONS.index(action)])
    s = cell(grid, row, col)
    assert b[s, s] == 1.0
    assert np.count_nonzero(b[:, s]) == 1


def trace(world: GridWorld, steps: int = 200) -> tuple[list[tuple[int]], list[int]]:
    environment = Environment(world)
    observations, states = [environment.reset()], [environment.state]
    for t in range(steps):
        observations.append(environment.step((t % len(ACTIONS),)))
        states.append(environment.state)
    return observations, states


def test_environment_is_deterministic_for_a_seed():
    world = GridWorld(grid=6, obs_noise=0.3, move_success=0.7, seed=3)
    first, again = trace(world), trace(GridWorld(**world.as_dict()))
    assert first == again
    assert all(len(o) == 1 and isinstance(o[0], int) for o in first[0])


def test_environment_differs_for_another_seed():
    world = GridWorld(grid=6, obs_noise=0.3, move_success=0.7, seed=3)
    other = GridWorld(grid=6, obs_noise=0.3, move_success=0.7, seed=4)
    assert trace(world) != trace(other)


def test_environment_starts_top_left_and_moves_only_to_neighbours():
    grid = 5
    environment = Environment(GridWorld(grid=grid, move_success=0.9, obs_noise=0.0, seed=1))
    assert environment.reset() == (0,) and environment.state == 0
    for t in range(100):
        before = environment.state
        observation = environment.step((t % len(ACTIONS),))
        assert observation == (environment.state,)  # no observation noise: it sees its own cell
        assert environment.state in four_neighbours(grid, before) | {before}


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"grid": 1}, "grid"),
        ({"grid": 4, "obs_noise": 1.5}, "obs_noise"),
        ({"grid": 4, "obs_noise": -0.1}, "obs_noise"),
        ({"grid": 4, "noise_kind": "x"}, "noise_kind"),
        ({"grid": 4, "move_success": 0}, "move_success"),
        ({"grid": 4, "move_success": 1.2}, "move_success"),
    ],
)
def test_bad_settings_raise_naming_the_setting(settings, name):
    with pytest.raises(ValueError, match=name):
        GridWorld(**settings)


def test_bad_settings_say_what_is_allowed():
    # RANGES is also what a sweep config's schema states for these settings.
    for settings, message in [
        ({"grid": 1}, "grid must be at least 2, got 1"),
        ({"grid": 4, "obs_noise": 1.5}, "obs_noise must be below 1, got 1.5"),
        ({"grid": 4, "move_success": 0}, "move_success must be above 0, got 0"),
        ({"grid": 4, "noise_kind": "x"}, "noise_kind must be one of ('local', 'uniform')"),
    ]:
        with pytest.raises(ValueError) as error:
            GridWorld(**settings)
        assert str(error.value).startswith(message)
