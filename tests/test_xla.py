"""XLA's memory plan (probe ``xla_memory_analysis``), checked against buffers known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from memsweep.agents import get
from memsweep.agents.base import AgentSpec, StepInput, xla_memory_plan
from memsweep.world.base import WorldSettings
from memsweep.world.gridworld import Grid

jax = pytest.importorskip("jax")


@pytest.mark.parametrize("n", [64, 256])
def test_the_plan_of_a_sort_is_its_copy(n):
    # Sorting a float32 (n, n) array needs one sorted copy as scratch: n·n·4 bytes; the
    # argument is the array, the output three float32 values.
    x = np.ones((n, n), np.float32)
    compiled = jax.jit(lambda x: jax.numpy.sort(x, axis=None)[:3]).lower(x).compile()
    plan = xla_memory_plan(compiled)
    assert plan["argument_bytes"] == n * n * 4
    assert plan["output_bytes"] == 3 * 4
    assert plan["temp_bytes"] == n * n * 4
    assert plan["alias_bytes"] == 0


def test_the_jax_population_plans_its_step_and_each_operation():
    backend = get("pymdp-jax")
    spec = AgentSpec("dense", "float64", 3, "private", 1)
    model = backend.build_model(Grid().model(WorldSettings(grid=4)), spec)
    population = backend.build_agents(model, spec)
    population.call("step", StepInput((0,), (0,)))
    plans = population.compiled_memory(StepInput((0,), (0,)))
    assert set(plans) == {"step", "infer_states", "infer_policies", "sample_action"}
    sizes = model.nbytes()
    # Private: every agent holds its own A and B, and the step takes them as arguments.
    assert plans["step"]["argument_bytes"] >= spec.agents * (sizes["A"] + sizes["B"])
    assert plans["infer_policies"]["argument_bytes"] >= spec.agents * sizes["B"]
    # infer_states reads A only (its B-free update from the empirical prior).
    assert plans["infer_states"]["argument_bytes"] < spec.agents * sizes["B"]


def test_a_backend_that_compiles_nothing_has_no_plan():
    backend = get("lean")
    spec = AgentSpec("dense", "float64", 1, "private", 1)
    population = backend.build_agents(
        backend.build_model(Grid().model(WorldSettings(grid=3)), spec), spec
    )
    assert population.compiled_memory(StepInput((0,), (0,))) == {}
