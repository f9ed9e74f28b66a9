"""The shipped worlds (grid, pymdp-grid, cue-chaining, tmaze): shapes, normalisation,
dependencies, seeded traces, exact byte accounting in every storage and dtype, how the
plan treats them, malformed models refused naming the array, and precision of both
PyMDP backends on cue-chaining."""

from __future__ import annotations

import functools
import itertools
import json

import numpy as np
import pytest

from memsweep.agents.base import build_model
from memsweep.plan import predict
from memsweep.plan import sweep as sweep_module
from memsweep.plan.config import ConfigError
from memsweep.plan.jobs import Job, reference_job, unsupported_reason
from memsweep.world import registry
from memsweep.world.base import ModelShape, WorldSettings
from memsweep.world.model import Model
from memsweep.world.pymdp_envs import cue_chaining_layout
from memsweep.world.storage import DTYPES, FORMATS, stored_bytes
from memsweep.world.storage import unsupported_reason as storage_reason

from .conftest import tiny_config

# Each shipped world at a small size (cue-chaining also at 6: its layout scales with G).
CASES = [("grid", 4), ("pymdp-grid", 4), ("cue-chaining", 5), ("cue-chaining", 6), ("tmaze", 5)]
IDS = [f"{world}-{grid}" for world, grid in CASES]


@functools.cache
def built(world: str, grid: int, seed: int = 0) -> Model:
    """One model per world and size (PyMDP's worlds import JAX to build)."""
    return registry.get(world).model(WorldSettings(world=world, grid=grid, seed=seed))


def settings(world: str, grid: int, seed: int = 0) -> WorldSettings:
    return WorldSettings(world=world, grid=grid, seed=seed)


# -- shapes, normalisation, dependencies ----------------------------------------------


@pytest.mark.parametrize(("world", "grid"), CASES, ids=IDS)
def test_declared_shape_is_the_built_models(world, grid):
    declared = registry.get(world).shape(settings(world, grid))
    actual = ModelShape.of(built(world, grid))
    assert declared.A == actual.A and declared.B == actual.B
    # Where a world declares its non-zeros, they are the built model's, array by array.
    for name, counts, real in (
        ("A", declared.A_nonzero, actual.A_nonzero),
        ("B", declared.B_nonzero, actual.B_nonzero),
    ):
        for index, count in enumerate(counts):
            if count is not None:
                assert count == real[index], f"{world} {name}[{index}]"


def test_which_worlds_declare_their_nonzeros():
    for world, grid in CASES:
        declared = registry.get(world).shape(settings(world, grid))
        expected = 0 if world == "tmaze" else declared.modalities
        assert len(declared.A_nonzero) == expected, world


@pytest.mark.parametrize(("world", "grid"), CASES, ids=IDS)
def test_model_is_normalised(world, grid):
    model = built(world, grid)
    assert model.problems() == []
    assert model.check() is model


def test_cue_chaining_dependencies():
    model = built("cue-chaining", 5)
    assert model.A_dependencies == [[0], [0, 1], [0, 1, 2], [0, 2]]
    assert model.B_dependencies == [[0], [1], [2]]
    assert model.states == [25, 4, 2] and model.actions == [5, 1, 1]
    assert model.observations == [25, 5, 3, 3]
    assert model.factorised


def test_tmaze_dependencies():
    model = built("tmaze", 5)
    assert model.A_dependencies == [[0], [0, 1], [0, 1]]
    assert model.B_dependencies == [[0], [1]]
    assert model.states == [5, 2] and model.actions == [5, 1]
    assert model.factorised


@pytest.mark.parametrize("world", ["grid", "pymdp-grid"])
def test_one_factor_worlds_are_not_factorised(world):
    model = built(world, 4)
    assert model.A_dependencies == [[0]] and model.B_dependencies == [[0]]
    assert not model.factorised


@pytest.mark.parametrize("grid", range(4, 21))
def test_cue_chaining_layout_puts_8_distinct_locations_inside(grid):
    layout = cue_chaining_layout(grid)
    locations = [
        layout["start_location"],
        layout["cue1_location"],
        *layout["cue2_locations"],
        *layout["reward_locations"],
    ]
    assert len(locations) == 8 and len(set(locations)) == 8
    assert all(0 <= row < grid and 0 <= col < grid for row, col in locations)
    assert layout["grid_shape"] == (grid, grid)


# -- seeded traces ----------------------------------------------------------------------


def trace(world: str, grid: int, seed: int, steps: int = 50) -> list[tuple[int, ...]]:
    """The observations of ``world``'s seeded environment under a fixed action sequence."""
    model = built(world, grid)
    env = registry.get(world).environment(model, settings(world, grid, seed))
    rng = np.random.default_rng(12345)  # the same actions for every seed
    actions = [tuple(int(rng.integers(n)) for n in model.actions) for _ in range(steps)]
    return [env.reset(), *(env.step(action) for action in actions)]


@pytest.mark.parametrize(("world", "grid"), CASES, ids=IDS)
def test_trace_is_seeded(world, grid):
    first = trace(world, grid, seed=7)
    assert trace(world, grid, seed=7) == first
    assert len(first) == 51 and all(len(o) == len(built(world, grid).A) for o in first)
    assert trace(world, grid, seed=8) != first


# -- exact bytes --------------------------------------------------------------------------


def expected_bytes(kind: str, array, fmt: str, dtype: str) -> int:
    """What world.storage.stored_bytes says an A[m] or B[f] costs, from its shape and
    non-zeros (per action for B)."""
    if kind == "B":
        parts = (
            array
            if isinstance(array, list)
            else [array[..., a] for a in range(np.shape(array)[-1])]
        )
    else:
        parts = [array]
    total = 0
    for part in parts:
        dense = part.toarray() if hasattr(part, "toarray") else np.asarray(part)
        unfolded = dense.reshape(dense.shape[0], -1)
        total += stored_bytes(unfolded.shape, int(np.count_nonzero(unfolded)), fmt, dtype)
    return total


COMBINATIONS = [
    (fmt, dtype)
    for fmt, dtype in itertools.product(FORMATS, DTYPES)
    if storage_reason(fmt, dtype) is None
]


def test_float16_is_dense_only():
    assert ("dense", "float16") in COMBINATIONS
    assert not any(dtype == "float16" for fmt, dtype in COMBINATIONS if fmt != "dense")
    assert len(COMBINATIONS) == 9


@pytest.mark.parametrize(("world", "grid"), CASES, ids=IDS)
def test_every_array_costs_what_stored_bytes_says(world, grid):
    model = built(world, grid)
    shape = ModelShape.of(model)
    for fmt, dtype in COMBINATIONS:
        stored = build_model(model, fmt, dtype)
        sizes = stored.array_nbytes()
        assert set(sizes) == {name for name, *_ in shape.arrays()}
        for kind, arrays in (("A", model.A), ("B", model.B)):
            for index, array in enumerate(arrays):
                name = f"{kind}[{index}]"
                assert sizes[name] == expected_bytes(kind, array, fmt, dtype), (name, fmt, dtype)
        itemsize = np.dtype(dtype).itemsize
        vectors = sum(model.observations) + sum(model.states)
        totals = stored.nbytes()
        assert totals["C"] + totals["D"] == vectors * itemsize
        assert totals["A"] + totals["B"] == sum(sizes.values())
        if fmt == "dense":
            # Dense: every entry, whatever the shape; stacked B costs the same.
            for name, matrix, copies, _ in shape.arrays():
                assert sizes[name] == copies * matrix[0] * matrix[1] * itemsize
            stacked = build_model(model, fmt, dtype, stack_b=True)
            assert stacked.nbytes() == totals


def job(world: str, grid: int, storage: str, dtype: str, backend: str = "pymdp-numpy") -> Job:
    return Job(
        backend=backend,
        storage=storage,
        dtype=dtype,
        grid=grid,
        agents=1,
        sharing="shared",
        policy_len=1,
        world=world,
    )


@pytest.mark.parametrize(("world", "grid"), CASES, ids=IDS)
def test_predicted_model_size_is_exact(world, grid):
    """predict.model_mb is the stored model's exact size where it is dense, and where it is
    sparse and the world declares its non-zeros (cue-chaining, pymdp-grid); otherwise
    (the grid world's formula: 5 entries an A column, 2 a B column; tmaze: every
    entry) it is an upper bound."""
    model = built(world, grid)
    declared = registry.get(world).shape(settings(world, grid))
    for fmt, dtype in COMBINATIONS:
        stored = build_model(model, fmt, dtype)
        actual = sum(stored.nbytes().values())
        predicted = predict.model_mb(job(world, grid, fmt, dtype))
        exact = fmt == "dense" or (world != "grid" and len(declared.A_nonzero) > 0)
        if exact:
            assert predicted == pytest.approx(actual / 1e6, rel=1e-12), (fmt, dtype)
        else:
            assert predicted >= actual / 1e6, (fmt, dtype)


# -- the plan ---------------------------------------------------------------------------


def config_of(**sweep) -> dict:
    config = tiny_config()
    config["sweep"].update(backend=["pymdp-numpy"], storage=["dense"], grid=[5])
    config["sweep"].update(sweep)
    return config


def by(planned, **settings) -> list:
    return [p for p in planned if all(getattr(p.job, k) == v for k, v in settings.items())]


def test_cue_chaining_at_grid_3_is_unsupported_with_a_reason():
    planned = sweep_module.plan(config_of(world=["grid", "cue-chaining"], grid=[3]))
    (cue,) = by(planned, world="cue-chaining")
    assert cue.status == sweep_module.UNSUPPORTED
    assert "at least 4×4" in cue.reason and "3×3" in cue.reason
    (grid,) = by(planned, world="grid")
    assert grid.status == sweep_module.RUN


def test_tmaze_is_planned_once_at_the_smallest_grid():
    planned = sweep_module.plan(config_of(world=["tmaze"], grid=[5, 10]))
    (small,) = by(planned, grid=5)
    (large,) = by(planned, grid=10)
    assert small.status == sweep_module.RUN
    assert large.status == sweep_module.UNSUPPORTED
    assert "fixed size" in large.reason and "smallest grid (5)" in large.reason
    assert "not at 10" in large.reason


def test_lean_runs_one_factor_one_modality_worlds_only():
    planned = sweep_module.plan(
        config_of(backend=["pymdp-numpy", "lean"], world=["pymdp-grid", "cue-chaining", "tmaze"])
    )
    for world, factors, modalities in (("cue-chaining", 3, 4), ("tmaze", 2, 3)):
        (lean,) = by(planned, backend="lean", world=world)
        assert lean.status == sweep_module.UNSUPPORTED
        assert "one hidden-state factor and one observation modality" in lean.reason
        assert f"{factors} factors and {modalities} modalities" in lean.reason
        (numpy,) = by(planned, backend="pymdp-numpy", world=world)
        assert numpy.status == sweep_module.RUN
    (lean,) = by(planned, backend="lean", world="pymdp-grid")
    assert lean.status == sweep_module.RUN


def test_pymdp_0_0_7_runs_one_factor_worlds_only():
    old = Job(
        backend="pymdp-numpy",
        storage="dense",
        dtype="float64",
        grid=5,
        agents=1,
        sharing="shared",
        policy_len=1,
        world="cue-chaining",
        pymdp_version="0.0.7.1",
    )
    reason = unsupported_reason(old)
    assert reason and "0.0.7.1" in reason and "one-factor worlds only" in reason
    assert unsupported_reason(Job(**{**old.to_dict(), "world": "pymdp-grid"})) is None
    assert unsupported_reason(Job(**{**old.to_dict(), "pymdp_version": "1.0.4"})) is None


# -- malformed models -------------------------------------------------------------------


def good() -> dict:
    """A small well-formed 2-factor, 2-modality model: A[1] sees both factors."""
    a0 = np.eye(3)
    a1 = np.full((2, 3, 2), 0.5)
    b0 = np.stack([np.eye(3), np.roll(np.eye(3), 1, axis=0)], axis=-1)
    b1 = np.eye(2)[:, :, None]
    return dict(
        A=[a0, a1],
        B=[b0, b1],
        C=[np.zeros(3), np.zeros(2)],
        D=[np.full(3, 1 / 3), np.full(2, 0.5)],
        A_dependencies=[[0], [0, 1]],
        B_dependencies=[[0], [1]],
    )


def wrong_axis(model):
    model["A"][1] = np.full((2, 3, 3), 0.5)  # its factor 1 has 2 states, not 3


def unnormalised_b(model):
    model["B"][0] = model["B"][0] * 0.5


def unnormalised_a(model):
    model["A"][0] = model["A"][0] + 0.1


def short_c(model):
    model["C"] = model["C"][:1]


def bad_dependencies(model):
    model["A_dependencies"] = [[0], [0, 5]]


MALFORMED = {
    "wrong-axis": (wrong_axis, "A[1]: shape (2, 3, 3), expected (observations, 3, 2)"),
    "unnormalised-B": (
        unnormalised_b,
        "B[0]: columns must sum to 1, one sums to 0.5 (column (0, 0))",
    ),
    "unnormalised-A": (
        unnormalised_a,
        "A[0]: columns must sum to 1, one sums to 1.3 (column (0,))",
    ),
    "missing-C": (short_c, "C: 1 arrays for 2 modalities"),
    "bad-dependencies": (bad_dependencies, "A_dependencies[1]: [0, 5] must name factors 0…1"),
}


def malformed(case: str) -> dict:
    model = good()
    MALFORMED[case][0](model)
    return model


def test_the_good_model_is_good():
    assert Model(**good()).problems() == []


@pytest.mark.parametrize("case", MALFORMED)
def test_model_problems_name_the_array(case):
    problems = Model(**malformed(case)).problems()
    assert any(MALFORMED[case][1] in problem for problem in problems), problems


def write_npz(path, model: dict) -> None:
    arrays = {f"{k}_{i}": np.asarray(a) for k in "ABCD" for i, a in enumerate(model[k])}
    np.savez(
        path,
        **arrays,
        A_dependencies=np.array(json.dumps(model["A_dependencies"])),
        B_dependencies=np.array(json.dumps(model["B_dependencies"])),
    )


MODULE = """import numpy as np

def build(grid):
    model = {model!r}
    return {{k: [np.asarray(a, dtype=float) for a in v] if k in "ABCD" else v
            for k, v in model.items()}}
"""


def write_module(folder, name: str, model: dict) -> str:
    as_lists = {
        k: [np.asarray(a).tolist() for a in v] if k in "ABCD" else v for k, v in model.items()
    }
    (folder / f"{name}.py").write_text(MODULE.format(model=as_lists))
    return f"{name}:build"


def plan_error(world: str) -> str:
    with pytest.raises(ConfigError) as error:
        sweep_module.plan(config_of(world=[world], grid=[3]))
    return str(error.value)


@pytest.mark.parametrize("case", MALFORMED)
def test_plan_refuses_a_malformed_npz_world_naming_the_array(case, tmp_path):
    path = tmp_path / f"{case}.npz"
    write_npz(path, malformed(case))
    message = plan_error(str(path))
    assert MALFORMED[case][1] in message and str(path) in message, message
    print(message)


@pytest.mark.parametrize("case", MALFORMED)
def test_plan_refuses_a_malformed_function_world_naming_the_array(case, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    world = write_module(tmp_path, f"malformed_{case.replace('-', '_')}", malformed(case))
    message = plan_error(world)
    assert MALFORMED[case][1] in message and world in message, message
    print(message)


def test_plan_takes_well_formed_user_worlds(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "good.npz"
    write_npz(path, good())
    function = write_module(tmp_path, "good_world_for_plan", good())
    planned = sweep_module.plan(config_of(world=[str(path), function], grid=[3]))
    assert {p.job.world for p in planned} == {str(path), function}
    assert all(p.status == sweep_module.RUN for p in planned)
    for p in planned:
        assert ModelShape.of(registry.get(p.job.world).model(p.job.world_settings())).A == (
            (3, 3),
            (2, 3, 2),
        )


# -- precision on cue-chaining, both PyMDP backends -------------------------------------

STEPS, REPEATS = 5, 2


@pytest.fixture(scope="module")
def cue_reference(tmp_path_factory):
    from memsweep.harness.reference import make_reference

    base = job("cue-chaining", 5, "dense", "float64")
    base = Job(**{**base.to_dict(), "agents": 2, "steps": STEPS, "repeats": REPEATS})
    path = tmp_path_factory.mktemp("cue-reference") / "reference.npz"
    make_reference(reference_job(base).world_settings(), 1, STEPS).save(path)
    return base, path


@pytest.mark.parametrize("backend", ["pymdp-numpy", "pymdp-jax"])
def test_cue_chaining_precision_and_model_rows(backend, cue_reference):
    import pandas as pd

    from memsweep.harness.measure import measure
    from memsweep.harness.reference import Reference

    base, path = cue_reference
    measured = Job(**{**base.to_dict(), "backend": backend})
    table = measure(measured, Reference.load(path), lambda phase: None).to_pandas()
    assert isinstance(table, pd.DataFrame)
    precision = table[table.phase == "precision"].set_index("metric").value
    if backend == "pymdp-jax":
        assert precision["max_abs_qs_error"] <= 1e-8
        assert precision["max_abs_q_pi_error"] <= 1e-4
    else:  # the reference's own agent, float64, shared: bit for bit
        assert precision["max_abs_qs_error"] == 0
        assert precision["max_abs_q_pi_error"] == 0
    model = built("cue-chaining", 5)
    rows = table[(table.phase == "model") & (table.metric == "bytes")]
    per_array = rows.set_index("operation").value
    names = [f"A[{m}]" for m in range(4)] + [f"B[{f}]" for f in range(3)]
    assert set(names) <= set(per_array.index)
    for name in names:
        kind, index = name[0], int(name[2])
        array = (model.A if kind == "A" else model.B)[index]
        assert per_array[name] == expected_bytes(kind, array, "dense", "float64"), name
    assert per_array["A"] == sum(per_array[n] for n in names if n.startswith("A"))
    assert per_array["B"] == sum(per_array[n] for n in names if n.startswith("B"))
