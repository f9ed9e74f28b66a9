"""``pymdp-jax``: PyMDP 1.0.4's JAX agent (``pymdp.agent.Agent``), the whole step jitted.

On another 1.0.x release (``pymdp_version``) the same agent runs, given only the settings
its ``Agent`` takes; 0.0.x has no JAX agent.

What an agent is here. The JAX agent is an ``equinox.Module`` with a leading
batch axis, so ``agents`` agents are ONE ``Agent`` with ``batch_size=agents``:
each row of the batch has its own beliefs (q(s), q(π), the empirical prior),
and one jitted call steps them all. ``sharing`` says how the model is handed
over:

* ``shared``: A, B, C, D are given once, without a batch axis, and PyMDP
  broadcasts them to the batch itself (``jnp.broadcast_to`` in
  ``Agent.__init__``). An XLA buffer has no zero strides, so this materialises
  one copy of A and B per agent: the shared layout holds the same bytes as the
  private one. ``layout`` records it as ``batched:shared-model-broadcast``.
* ``private``: A, B, C, D are given with a leading batch axis of size
  ``agents`` (a copy per agent, stacked on the host, then put on the device),
  which PyMDP keeps as is: ``batched:per-agent-model``. The host stack is a
  transient of the build (it shows in the build's peak, not after it).

Measured (G=20, 10 agents, float64): the agent's A and B are 76.8 MB in both
layouts, ten times the 7.7 MB model, and the build's anonymous-memory growth
is 126 MB shared against 120 MB private (55 and 50 MB for one agent).

Settings that differ from the legacy numpy agent's defaults are set to the
reference's: gamma=16, alpha=16, deterministic marginal action selection;
``inference_algo='fpi'`` is the JAX name of legacy's ``VANILLA`` fixed-point
iteration (one factor, one modality: both give the exact posterior).
Expected utility and state information gain on, parameter information gain
and learning off (both agents' defaults).

One operation, ``step``: infer_states from the empirical prior,
infer_policies, sample_action and update_empirical_prior, in one
``equinox.filter_jit`` function. Its first call is the harness's ``compile``
phase. Teacher forcing happens inside the jitted function: the forced action
is an argument (with a flag, so closed-loop and forced steps share one
compiled program) and only the next prior follows it; ``beliefs().action`` is
the agent's own choice. Every call ends in ``jax.block_until_ready`` so the
harness times the computation, not the asynchronous dispatch.

dtypes. ``jax_enable_x64`` is switched on only for float64 populations, with
the thread-local ``jax.enable_x64`` context around their construction and
every call. A global switch would be dishonest for float32: with x64 on,
PyMDP's own constants (``jnp.ones``, ``jnp.zeros`` without a dtype) are
float64 and promote a float32 model's whole computation to float64 (measured:
287 f64 against 50 f32 tensors in the step's StableHLO, beliefs returned as
float64). With x64 off a float32 model computes in float32 throughout.
float16 models are accepted and stored in float16 but computed in float32
(PyMDP's float32 constants promote them); beliefs and the empirical prior
come back float32, so the first prior (D) is cast to that dtype up front
(else the second step would recompile for the new prior dtype).

Sparse storages are refused by the agent (TypeError), see ``_SPARSE``.

Memory: XLA's CPU buffers are host memory that ``tracemalloc`` does not see;
USS and the kernel's peak do. The population keeps its ``Agent`` (with the
batched A, B) and its last outputs referenced, so build and step memory stay
visible to those probes until the population is dropped. Each call also
uses the compiled step's scratch buffers, which show in the step's kernel
peak: by XLA's memory analysis 9 MB per agent at G=20, L=1 and 32 MB at L=2,
more than the 7.7 MB model (consistent with a 1.28 MB B[..., u] slice
gathered for each of the 5 or 25 policies).
"""

from __future__ import annotations

import numpy as np

from memsweep.agents.base import (
    AgentSpec,
    Backend,
    Beliefs,
    Population,
    StepInput,
    StoredModel,
    accepted,
    release,
    xla_memory_plan,
)
from memsweep.world.gridworld import ACTIONS

_SPARSE = (
    "PyMDP's JAX agent takes dense arrays only: scipy sparse and jax.experimental.sparse "
    "BCOO A/B raise TypeError in Agent() ('broadcast_to requires ndarray or scalar arguments')"
)
SHARED_LAYOUT = "batched:shared-model-broadcast"
PRIVATE_LAYOUT = "batched:per-agent-model"


def _make_step():
    """The jitted step, one per process: its compiled programs are cached on it by shape."""
    import equinox as eqx
    import jax.numpy as jnp

    @eqx.filter_jit
    def step(agent, observation, prior, forced, use_forced):
        qs = agent.infer_states(observation, empirical_prior=prior)
        q_pi, _neg_efe = agent.infer_policies(qs)
        action = agent.sample_action(q_pi)  # deterministic: no key needed
        # Teacher forcing: the next prior follows the reference's action, not the agent's.
        follow = jnp.where(use_forced, forced, action)
        return qs, q_pi, action, agent.update_empirical_prior(follow, qs)

    return step


def _make_operations() -> dict:
    """Each operation of the step jitted on its own: XLA's plan for each tells which of them
    the step's temporaries belong to (the step fuses them, so its plan alone cannot)."""
    import equinox as eqx

    def infer_states(agent, observation, prior):
        return agent.infer_states(observation, empirical_prior=prior)

    def infer_policies(agent, qs):
        return agent.infer_policies(qs)[0]

    def sample_action(agent, q_pi):
        return agent.sample_action(q_pi)

    return {f.__name__: eqx.filter_jit(f) for f in (infer_states, infer_policies, sample_action)}


class JaxPopulation(Population):
    operations = ("step",)

    def __init__(self, model: StoredModel, spec: AgentSpec, step):
        import jax
        import jax.numpy as jnp
        from pymdp.agent import Agent

        self._jax = jax  # kept, so that call() does no import inside the timed window
        self._step = step
        self._x64 = spec.dtype == "float64"
        self._batch = spec.agents
        self._factors = len(model.Bs)
        self._no_force = np.zeros((spec.agents, self._factors), dtype=np.int32)
        self._operations = None  # jitted one by one only when their plans are asked for
        self.layout = PymdpJax.layout(spec)

        def batched(array):
            # A copy per agent, as code that holds one model per agent would stack them.
            return np.repeat(np.asarray(array)[np.newaxis], spec.agents, axis=0)

        prepare = (lambda array: array) if spec.sharing == "shared" else batched
        with jax.enable_x64(self._x64):
            a, b, c, d = (
                [jnp.asarray(prepare(x)) for x in arrays]
                for arrays in (model.As, model.Bs, model.Cs, model.Ds)
            )
            dependencies = (
                dict(A_dependencies=model.A_dependencies, B_dependencies=model.B_dependencies)
                if model.factorised
                else {}
            )
            settings = accepted(
                Agent,
                policy_len=spec.policy_len,
                batch_size=spec.agents,
                gamma=16.0,
                alpha=16.0,
                action_selection="deterministic",
                sampling_mode="marginal",
                inference_algo="fpi",
                use_utility=True,
                use_states_info_gain=True,
                use_param_info_gain=False,
                **dependencies,
            )
            self.agent = Agent(A=a, B=b, C=c, D=d, **settings)
            del a, b, c, d  # the agent holds its own (batched) arrays; drop the unbatched ones
            # The step computes in the model's dtype promoted with JAX's default float (PyMDP's
            # own constants have that dtype): float32 for a float16 model. The prior it returns
            # has that dtype, so start from D in it too, or the second call would recompile.
            # (A formula, not jax.eval_shape of the step: tracing belongs to the compile phase.)
            compute = jnp.promote_types(
                model.Ds[0].dtype, jax.dtypes.canonicalize_dtype(np.float64)
            )
            self._d = [d.astype(compute) for d in self.agent.D]
        self.compute_dtype = str(compute)
        self.reset()

    def _observation(self, observation: tuple[int, ...]) -> list[np.ndarray]:
        # Host arrays, not jnp ones: they travel as jit arguments without a dispatch of their own.
        return [np.full((self._batch,), o, dtype=np.int32) for o in observation]

    def _forcing(self, action: tuple[int, ...] | None) -> tuple[np.ndarray, np.ndarray]:
        # 0-d arrays, not numpy scalars: filter_jit treats a scalar as static (a recompile each).
        if action is None:
            return self._no_force, np.array(False)
        forced = np.broadcast_to(np.asarray(action, dtype=np.int32), (self._batch, self._factors))
        return np.ascontiguousarray(forced), np.array(True)

    def call(self, operation: str, step: StepInput) -> None:
        if operation != "step":
            raise ValueError(f"unknown operation {operation!r}")
        jax = self._jax
        with jax.enable_x64(self._x64):
            outputs = self._step(
                self.agent,
                self._observation(step.observation),
                self._prior,
                *self._forcing(step.reference_action),
            )
            # Dispatch is asynchronous: wait, so the harness's window holds the computation.
            self._qs, self._q_pi, self._action, self._prior = jax.block_until_ready(outputs)

    def compiled_memory(self, step: StepInput) -> dict[str, dict[str, int]]:
        """XLA's plan of the jitted step (its first call compiled it: this reads the cached
        executable) and of each operation compiled on its own, each fed the previous one's
        output, as in the step."""
        jax = self._jax
        observation = self._observation(step.observation)

        def plan(function, *args):
            return xla_memory_plan(function.lower(*args).compile().compiled)

        with jax.enable_x64(self._x64):
            forcing = self._forcing(step.reference_action)
            plans = {"step": plan(self._step, self.agent, observation, self._prior, *forcing)}
            if self._operations is None:
                self._operations = _make_operations()
            args = (self.agent, observation, self._prior)
            for name, function in self._operations.items():
                plans[name] = plan(function, *args)
                args = (self.agent, function(*args))
        return plans

    def beliefs(self) -> Beliefs:
        if self._qs is None:
            raise RuntimeError("no step has run since the last reset")
        return Beliefs(
            qs=np.concatenate([np.asarray(q[0, -1], dtype=np.float64) for q in self._qs]),
            q_pi=np.array(self._q_pi[0], dtype=np.float64),
            action=tuple(int(a) for a in np.asarray(self._action[0])),
        )

    def reset(self) -> None:
        self._prior = self._d
        self._qs = self._q_pi = self._action = None

    def device_memory(self) -> dict[str, float] | None:
        """The accelerator's own counters (bytes in use, peak); None on a CPU, which has none.

        Process probes cannot see GPU memory; XLA's allocator can.
        """
        import jax

        stats = jax.devices()[0].memory_stats()
        if not stats:
            return None
        keys = ("bytes_in_use", "peak_bytes_in_use", "bytes_limit")
        return {key: float(stats[key]) for key in keys if key in stats}


class PymdpJax(Backend):
    name = "pymdp-jax"
    storages = {"dense": None, "csr": _SPARSE, "csc": _SPARSE, "coo": _SPARSE}
    # float16: stored in float16, computed in float32 (see the module docstring).
    dtypes = {"float64": None, "float32": None, "float16": None}
    blind_probes = ("tracemalloc",)
    stack_b = True  # PyMDP's (N, N, 5) B
    libraries = {
        "pymdp_version": "inferactively-pymdp",
        "jax_version": "jax",
        "numpy_version": "numpy",
    }
    import_mb = 420.0  # JAX, jaxlib's XLA runtime, equinox and PyMDP's JAX agent

    def __init__(self):
        self._step = None

    def pymdp_reason(self, version: str) -> str | None:
        if release(version) < (1,):
            return f"PyMDP {version} has no JAX agent (it came with 1.0.0)"
        return super().pymdp_reason(version)

    @classmethod
    def layout(cls, spec: AgentSpec) -> str:
        return SHARED_LAYOUT if spec.sharing == "shared" else PRIVATE_LAYOUT

    @classmethod
    def model_copies(cls, spec: AgentSpec) -> int:
        """The model built, plus one per batch row in both layouts (see the module docstring)."""
        return 1 + spec.agents

    @classmethod
    def temporaries_mb(cls, spec: AgentSpec, states: int, model_mb: float) -> float:
        """The jitted step's scratch: a B slice (N×N, at least float32) per policy and agent."""
        policies = len(ACTIONS) ** spec.policy_len
        size = max(np.dtype(spec.dtype).itemsize, 4)
        return spec.agents * policies * states * states * size / 1e6

    def load(self) -> None:
        import equinox  # noqa: F401
        import jax  # noqa: F401
        import pymdp.agent  # noqa: F401

        self._step = _make_step()

    def build_agents(self, model: StoredModel, spec: AgentSpec) -> Population:
        if self._step is None:
            self.load()
        return JaxPopulation(model, spec, self._step)


BACKEND = PymdpJax()
