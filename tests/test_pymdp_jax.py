"""The ``pymdp-jax`` backend against the reference trace, for real (no mocks)."""

import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from memsweep.agents import AgentSpec, StepInput, get
from memsweep.agents.pymdp_jax import PRIVATE_LAYOUT, SHARED_LAYOUT
from memsweep.harness.reference import make_reference
from memsweep.world.base import WorldSettings
from memsweep.world.gridworld import ACTIONS, Grid

from .conftest import memsweep

WORLD = WorldSettings(grid=5)
STATES = WORLD.grid**2
STEPS = 8
# Legacy's deterministic choice treats action marginals within 1e-8 as tied and picks one
# at random (control.select_highest); JAX takes the first argmax.
LEGACY_TIE = 1e-8
# Measured: max |Δq(π)| = 1.5e-6 (G=5, L=1 and 2; also G=20). The legacy agent approximates
# the state-information gain (spm_MDP_G skips states with q(s) <= e^-16 and adds e^-16 inside
# its logs); the JAX agent computes it exactly. 1e-5 leaves a margin of about 6x.
Q_PI_BOUND = 1e-5


@pytest.fixture(scope="module")
def backend():
    backend = get("pymdp-jax")
    backend.load()
    return backend


@pytest.fixture(scope="module", params=[1, 2], ids=lambda length: f"L{length}")
def reference(request):
    return make_reference(WORLD, policy_len=request.param, steps=STEPS)


def build(backend, dtype="float64", agents=1, sharing="shared", policy_len=1, world=WORLD):
    spec = AgentSpec("dense", dtype, agents, sharing, policy_len)
    return backend.build_agents(backend.build_model(Grid().model(world), spec), spec)


def replay(population, reference, steps=STEPS):
    """One repeat as the harness runs it: teacher-forced on the reference's actions."""
    population.reset()
    history = []
    for index in range(steps):
        step = reference.inputs(index)
        for operation in population.operations:
            population.call(operation, step)
        history.append(population.beliefs())
    return history


def action_marginals(q_pi):
    # Policies are itertools.product order in both agents: the first action varies slowest.
    return np.asarray(q_pi).reshape(len(ACTIONS), -1).sum(axis=1)


def errors(history, reference):
    qs = np.array([b.qs for b in history])
    q_pi = np.array([b.q_pi for b in history])
    return (
        np.abs(qs - reference.qs[: len(history)]).max(),
        np.abs(q_pi - reference.q_pi[: len(history)]).max(),
    )


def test_float64_matches_reference(backend, reference):
    population = build(backend, "float64", policy_len=reference.policy_len)
    assert population.compute_dtype == "float64"
    history = replay(population, reference)
    assert population._qs[0].dtype == np.float64  # what the jitted step really returned
    qs_error, q_pi_error = errors(history, reference)
    assert qs_error <= 1e-8  # measured 1.6e-15
    assert q_pi_error <= Q_PI_BOUND
    for index, beliefs in enumerate(history):
        assert len(beliefs.action) == 1  # one factor
        if beliefs.action == reference.inputs(index).reference_action:
            continue
        # A different choice is only allowed where the reference itself saw a tie.
        marginal = action_marginals(reference.q_pi[index])
        assert marginal.max() - marginal[beliefs.action[0]] <= LEGACY_TIE, (index, marginal)
        assert marginal.max() - marginal[reference.actions[index, 0]] <= LEGACY_TIE  # the order
    # A repeat after reset() gives the same trace (the harness repeats the loop).
    again = replay(population, reference)
    for first, second in zip(history, again, strict=True):
        np.testing.assert_array_equal(first.qs, second.qs)
        np.testing.assert_array_equal(first.q_pi, second.q_pi)
        assert first.action == second.action


def test_float32_computes_in_float32(backend, reference):
    # Built after float64 populations in this process: x64 must not leak into it.
    population = build(backend, "float32", policy_len=reference.policy_len)
    assert population.compute_dtype == "float32"
    assert population.agent.A[0].dtype == np.float32
    history = replay(population, reference)
    assert population._qs[0].dtype == np.float32  # what the jitted step really returned
    qs_error, q_pi_error = errors(history, reference)
    assert qs_error <= 1e-4  # measured 8e-8
    assert q_pi_error <= 1e-4  # measured 1e-6


def test_float16_is_stored_in_float16_and_computed_in_float32(backend, reference):
    population = build(backend, "float16", policy_len=reference.policy_len)
    assert population.agent.A[0].dtype == np.float16
    assert population.agent.B[0].dtype == np.float16
    # PyMDP's own float32 constants promote the computation: beliefs come back float32.
    assert population.compute_dtype == "float32"
    history = replay(population, reference)
    assert population._qs[0].dtype == np.float32
    assert all(np.isfinite(b.qs).all() and np.isfinite(b.q_pi).all() for b in history)
    qs_error, q_pi_error = errors(history, reference)
    assert qs_error <= 1e-3  # measured 1.5e-5: float16 rounding of A and B
    assert q_pi_error <= 1e-3  # measured 2e-4


@pytest.mark.parametrize("sharing", ["shared", "private"])
def test_batched_agents_match_a_single_agent(backend, sharing):
    reference = make_reference(WORLD, policy_len=1, steps=STEPS)
    single = replay(build(backend, agents=1, sharing=sharing), reference)
    population = build(backend, agents=3, sharing=sharing)
    assert population.layout == (SHARED_LAYOUT if sharing == "shared" else PRIVATE_LAYOUT)
    # PyMDP broadcasts an unbatched model to the batch: both layouts hold a copy per agent.
    assert population.agent.A[0].shape == (3, STATES, STATES)
    assert population.agent.B[0].shape == (3, STATES, STATES, len(ACTIONS))
    batched = replay(population, reference)
    for one, first in zip(single, batched, strict=True):
        np.testing.assert_allclose(first.qs, one.qs, rtol=0, atol=1e-14)
        np.testing.assert_allclose(first.q_pi, one.q_pi, rtol=0, atol=1e-14)
        assert first.action == one.action
    # Every agent of the batch holds the same beliefs (same observations, same model).
    qs = np.asarray(population._qs[0])
    np.testing.assert_array_equal(qs, np.broadcast_to(qs[:1], qs.shape))


def test_the_step_compiles_once(backend, caplog):
    import jax

    world = WorldSettings(grid=4)  # a shape no other test compiled
    reference = make_reference(world, policy_len=1, steps=4)
    population = build(backend, "float16", agents=2, policy_len=1, world=world)
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        replay(population, reference, steps=4)
        population.call("step", StepInput(reference.inputs(0).observation, None))  # closed loop
        replay(population, reference, steps=4)
    # Other messages are beliefs()'s small indexing programs.
    compiles = [r for r in caplog.records if "Compiling jit(step)" in r.getMessage()]
    # One program for the step: forced and closed-loop calls, and the float32 prior that a
    # float16 model returns, all reuse it.
    assert len(compiles) == 1, [r.getMessage()[:80] for r in compiles]


@pytest.mark.parametrize("storage", ["csr", "csc", "coo"])
def test_sparse_storage_is_unsupported(backend, storage):
    spec = AgentSpec(storage, "float32", 1, "shared", 1)
    reason = backend.unsupported_reason(spec)
    assert reason and "TypeError" in reason and "BCOO" in reason


def test_the_agent_really_refuses_sparse(backend):
    import jax.numpy as jnp
    from jax.experimental import sparse as jsparse
    from pymdp.agent import Agent

    from memsweep.agents import build_model

    model = Grid().model(WORLD)
    dense = backend.build_model(model, AgentSpec("dense", "float32", 1, "shared", 1))
    csr = build_model(model, "csr", "float32")  # B as a list: the sparse model as stored
    for a in (csr.A, jsparse.BCOO.fromdense(jnp.asarray(dense.A))):
        with pytest.raises(TypeError):
            Agent(A=[a], B=[jnp.asarray(dense.B)], C=[dense.C], D=[dense.D])


def test_dtypes_declared_supported(backend):
    for dtype in ("float64", "float32", "float16"):
        assert backend.unsupported_reason(AgentSpec("dense", dtype, 1, "shared", 1)) is None


def test_module_import_does_not_import_jax():
    code = (
        "import sys, memsweep.agents.pymdp_jax as m; "
        "assert m.BACKEND.name == 'pymdp-jax'; "
        "assert not {'jax', 'pymdp', 'equinox'} & set(sys.modules), 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_versions_are_provenance_columns():
    versions = get("pymdp-jax").versions()  # package metadata: no JAX import needed
    assert set(versions) == {"pymdp_version", "jax_version", "numpy_version"}
    assert all(versions.values())


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "jax.parquet"
    memsweep(
        "measure", "--backend", "pymdp-jax", "--storage", "dense", "--dtype", "float32",
        "--grid", "8", "--agents", "4", "--sharing", "shared", "--policy-len", "1",
        "--steps", "5", "--repeats", "2", "--out", str(out),
    )  # fmt: skip
    table = pd.read_parquet(out)
    assert (table.status == "ok").all()
    assert set(table.layout) == {SHARED_LAYOUT}
    compile_rows = table[(table.phase == "compile") & (table.operation == "step")]
    assert len(compile_rows[compile_rows.metric == "call_seconds"]) == 1
    steps = table[(table.phase == "step") & (table.operation == "step")]
    assert len(steps[steps.metric == "call_seconds"]) == 5 * 2 - 1  # all but the compile call
    assert (steps[steps.metric == "call_peak_bytes"].probe == "vmhwm").any()
    summary = table[table.phase == "summary"]
    assert not summary[(summary.metric == "per_agent_bytes") & (summary.probe == "rss_anon")].empty
    precision = table[table.phase == "precision"].set_index("metric").value
    assert precision["max_abs_qs_error"] <= 1e-4
