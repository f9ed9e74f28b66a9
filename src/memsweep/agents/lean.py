"""``lean``: our storage-aware agent for one hidden-state factor and one observation modality.

It reproduces PyMDP 1.0.4's numpy agent (``pymdp.legacy.agent.Agent``) with its
default settings, on any matrix that supports ``@``: dense numpy arrays and
scipy ``csr``/``csc``/``coo`` arrays run the same code. A and B are never
densified; every temporary in the step loop is a vector of N entries (a few per depth
of the plan, freed as the agent moves on).

An agent holds q(s), q(pi) and its last action. ``shared``: every agent references one
model (A, B and two N-vectors derived from A, below); ``private``: each agent holds a deep
copy of A and B (``.copy()`` of the numpy or scipy arrays) and its own derived vectors.

What it follows, formula by formula (``legacy`` = ``pymdp/legacy``):

* State inference (``inference.update_posterior_states`` -> ``algos.fpi.
  run_vanilla_fpi``): with one factor the fixed point is reached in one exact
  update, ``qs = softmax(ln(A[o, :] + 1e-16) + ln(prior + 1e-16))`` (the
  ``+ 1e-16`` is ``maths.spm_log_single``'s ``EPS_VAL``). The prior is ``D``
  on the first step, else ``B[action] @ qs`` with the action of the last
  ``sample_action`` (``control.get_expected_states``; under teacher forcing the
  reference's action, as ``base`` describes), computed at
  ``infer_states`` as the legacy agent does, so per-operation figures compare.
* Policies (``control.construct_policies``): all ``5**policy_len`` action
  sequences in ``itertools.product`` order (first action most significant).
* Negative expected free energy (``control.update_posterior_policies_
  factorized``), per policy and summed over its steps t:
  ``qs_t = B[a_t] @ qs_{t-1}``;
  utility ``qo_t . lnC`` with ``qo_t = A @ qs_t`` and ``lnC = ln(softmax(C)
  + 1e-16)`` (``calc_expected_utility`` log-softmaxes C);
  state information gain as ``maths.spm_MDP_G`` computes it (that is what
  ``calc_states_info_gain_factorized`` calls): over the states with
  ``qs_t > exp(-16)`` only (``q_S``), ``sum_s q_S[s] sum_o A[o,s] ln(A[o,s] +
  exp(-16)) - qo_S . ln(qo_S + 1e-16)`` with ``qo_S = A @ q_S``.
  ``G = sum_t utility_t + sum_t info_t``; ``q_pi = softmax(16 G + ln(E + 1e-16))``
  with E uniform.
* Action (``control.sample_action``, marginal, deterministic): each action's
  marginal is the sum of q_pi over the policies that start with it (summed in
  policy order, in float64 as legacy's ``obj_array_zeros`` does), normalised;
  ``control.select_highest`` takes the largest, and where several are within
  1e-8 of it draws ``np.random.choice(len(ties))`` from the global numpy RNG,
  exactly as legacy does, so a seeded run picks the same action.

Where it differs from the legacy code (results agree to rounding):

* The information gain uses sparse-friendly algebra instead of legacy's loop
  over every state above the threshold (O(N) Python iterations of dense
  columns): ``sum_s q_S[s] h[s]`` with ``h[s] = sum_o A[o,s] ln(A[o,s] +
  exp(-16))`` precomputed once per model copy (a vector of N), and one
  ``A @ q_S``. The utility is ``u . qs_t`` with ``u = A^T lnC``, also a
  precomputed vector of N. Both only reorder sums (errors of a few ulp).
* Policies sharing a prefix share its predicted states: a depth-first walk of
  the policy tree (in policy order) does ``sum_{t=1..L} 5**t`` products with B
  and with A instead of ``L * 5**L``, and holds one predicted q(s) per depth.
* Beliefs stay in the model's dtype (legacy returns float64 q(s) from a
  float32 model); h and u are computed in float64 from the stored values,
  then cast.
* Row ``o`` of A is read per format: a view for dense, a slice of the index
  arrays for CSR, ``A.T @ onehot(o)`` for CSC and COO (a row of those formats
  needs a scan of all stored entries however it is read; the product does it
  in compiled code with no temporary beyond the N-vector).
* Only the one-factor, one-modality case exists: no learning, no MMP, no
  sophisticated inference.
* float16 is refused: see ``_FLOAT16`` below for the measured reason.
"""

from __future__ import annotations

import math

import numpy as np

from memsweep.agents.base import AgentSpec, Backend, Beliefs, Population, StepInput, StoredModel
from memsweep.world.base import ModelShape
from memsweep.world.storage import is_sparse

EPS_VAL = 1e-16  # pymdp.legacy.maths.EPS_VAL: the epsilon of spm_log_single
# spm_MDP_G's threshold on q(s) and its epsilon inside ln(A); a Python float so arithmetic on
# float32 arrays stays float32 (a numpy float64 scalar would promote it).
MDP_G_EPS = math.exp(-16)
GAMMA = 16.0  # legacy Agent default policy precision
TIE = 1e-8  # control.select_highest: actions this close to the best are a tie
_CHUNK = 1 << 18  # entries per block when deriving the per-state vectors h and u

_FLOAT16 = (
    "lean refuses float16: PyMDP's ln(x + 1e-16) has no float16 form (1e-16 rounds to 0, "
    "so ln 0 = -inf and the information gain's 0 * ln 0 turns q(pi) into NaN); with the "
    "smallest float16 subnormal as epsilon instead, q(s) stays within 5e-3 of the reference "
    "but float16 rounding of the information gain (a difference of sums of size ln N), times "
    "gamma=16, moves q(pi) by 1e-2 to 1e-1, more than the gaps between actions, so the "
    "actions are no longer PyMDP's"
)


def _softmax(x: np.ndarray) -> np.ndarray:
    """``pymdp.legacy.maths.softmax`` on a vector (same operations, same rounding)."""
    out = np.exp(x - x.max(axis=0))
    return out / np.sum(out, axis=0)


def _log(x: np.ndarray) -> np.ndarray:
    """``pymdp.legacy.maths.spm_log_single``."""
    return np.log(x + EPS_VAL)


def _column_sums(matrix, weight) -> np.ndarray:
    """``sum_o weight(A[o, s], o)`` per column s, in float64, over the stored entries.

    ``weight(values, rows)`` must map 0 to 0 (so zeros need not be visited). Works in
    blocks of ``_CHUNK`` entries so a dense or dense-in-content matrix never gets a
    temporary of its own size.
    """
    n_rows, n_cols = matrix.shape
    total = np.zeros(n_cols)
    if not is_sparse(matrix):
        block = max(1, _CHUNK // n_cols)
        for start in range(0, n_rows, block):
            values = np.asarray(matrix[start : start + block], dtype=np.float64)
            rows = np.arange(start, start + len(values))[:, None]
            total += weight(values, rows).sum(axis=0)
        return total
    fmt = matrix.format
    for start in range(0, matrix.nnz, _CHUNK):
        stop = min(start + _CHUNK, matrix.nnz)
        positions = np.arange(start, stop)
        if fmt == "csr":
            rows = np.searchsorted(matrix.indptr, positions, side="right") - 1
            cols = matrix.indices[start:stop]
        elif fmt == "csc":
            rows = matrix.indices[start:stop]
            cols = np.searchsorted(matrix.indptr, positions, side="right") - 1
        elif fmt == "coo":
            rows, cols = matrix.coords[0][start:stop], matrix.coords[1][start:stop]
        else:
            raise ValueError(f"lean: unsupported sparse format {fmt!r}")
        values = matrix.data[start:stop].astype(np.float64)
        total += np.bincount(cols, weights=weight(values, rows), minlength=n_cols)
    return total


def _row_reader(matrix):
    """A function ``o -> A[o, :]`` as a dense vector in A's dtype, cheap for A's format."""
    n_rows, n_cols = matrix.shape
    if not is_sparse(matrix):
        return lambda o: matrix[o]  # a view: no copy
    if matrix.format == "csr":
        indptr, indices, data = matrix.indptr, matrix.indices, matrix.data

        def csr_row(o):
            # A slice of row o's entries: O(entries in the row). Assumes no duplicate entries,
            # which storage.store guarantees (sum_duplicates).
            row = np.zeros(n_cols, dtype=data.dtype)
            start, stop = indptr[o], indptr[o + 1]
            row[indices[start:stop]] = data[start:stop]
            return row

        return csr_row
    # CSC and COO keep no row index: any read of a row scans every stored entry. A.T (a CSR
    # view of CSC's arrays, a COO with swapped coordinates; no copy) times a one-hot vector
    # does the scan in compiled code. Built once: a COO transpose re-validates its indices.
    # (Comparing the row indices with o is a few times faster, but allocates nnz booleans:
    # N^2 of them for a uniform-noise A, which the step loop must not.)
    transposed = matrix.T

    def product_row(o):
        onehot = np.zeros(n_rows, dtype=matrix.dtype)
        onehot[o] = 1
        return transposed @ onehot  # exact: every other term is A[o', s] * 0

    return product_row


class _Model:
    """One copy of A and B, with the O(N) vectors derived from it that planning needs."""

    def __init__(self, stored: StoredModel, copy: bool):
        def own(matrix):
            return matrix.copy() if copy else matrix  # .copy() is deep for numpy and scipy

        self.A = own(stored.A)
        self.B = [own(matrix) for matrix in stored.B]
        self.D = stored.D
        self.dtype = np.dtype(stored.dtype)
        self.states = self.A.shape[1]
        self.row = _row_reader(self.A)
        # ln softmax(C), as calc_expected_utility does; u = A^T lnC turns qo . lnC into u . qs.
        c = np.asarray(stored.C, dtype=np.float64)
        ln_c = _log(_softmax(c))
        self.utility = _column_sums(self.A, lambda a, rows: a * ln_c[rows]).astype(self.dtype)
        # spm_MDP_G's per-state term sum_o A[o,s] ln(A[o,s] + exp(-16)).
        self.neg_entropy = _column_sums(self.A, lambda a, rows: a * np.log(a + MDP_G_EPS)).astype(
            self.dtype
        )
        self.actions = len(self.B)

    def info_gain(self, q: np.ndarray):
        """``maths.spm_MDP_G(A, q)`` for one factor and one modality."""
        q_s = np.where(q > MDP_G_EPS, q, self.dtype.type(0))
        qo = self.A @ q_s
        return self.neg_entropy @ q_s - qo @ _log(qo)


class _Agent:
    """What one agent holds: its beliefs and its last action; nothing of size N^2."""

    __slots__ = ("model", "qs", "q_pi", "action", "own_action")

    def __init__(self, model: _Model):
        self.model = model
        self.reset()

    def reset(self) -> None:
        model = self.model
        self.qs = np.full(model.states, 1.0 / model.states, dtype=model.dtype)  # Agent.reset
        self.q_pi = None
        self.action = None  # the action the next prior follows (teacher-forced or own)
        self.own_action = -1

    def infer_states(self, observation: int) -> None:
        model = self.model
        prior = model.D if self.action is None else model.B[self.action] @ self.qs
        self.qs = _softmax(_log(model.row(observation)) + _log(prior))

    def infer_policies(self, policy_len: int) -> None:
        model = self.model
        neg_efe = np.empty(model.actions**policy_len, dtype=model.dtype)
        count = 0

        def visit(q, depth, utility, info):
            # Depth-first in action order: leaves come out in itertools.product order.
            nonlocal count
            for b in model.B:
                q_next = b @ q
                u = utility + model.utility @ q_next
                i = info + model.info_gain(q_next)
                if depth == policy_len:
                    neg_efe[count] = u + i
                    count += 1
                else:
                    visit(q_next, depth + 1, u, i)

        visit(self.qs, 1, 0.0, 0.0)
        ln_e = _log(np.full(len(neg_efe), 1.0 / len(neg_efe), dtype=model.dtype))
        self.q_pi = _softmax(neg_efe * model.dtype.type(GAMMA) + ln_e)

    def sample_action(self) -> int:
        actions = self.model.actions
        # Policies starting with action a are a contiguous block; legacy adds them one by one
        # into float64 zeros, which add.accumulate reproduces (a sequential sum).
        blocks = self.q_pi.astype(np.float64).reshape(actions, -1)
        marginals = np.add.accumulate(blocks, axis=1)[:, -1]
        marginals = marginals / marginals.sum(axis=0)
        ties = np.flatnonzero(np.abs(marginals - np.amax(marginals)) <= TIE)
        if len(ties) > 1:
            return int(ties[np.random.choice(len(ties))])
        return int(ties[0])


class LeanPopulation(Population):
    operations = ("infer_states", "infer_policies", "sample_action")

    def __init__(self, model: StoredModel, spec: AgentSpec):
        if spec.sharing not in ("shared", "private"):
            raise ValueError(f"unknown sharing {spec.sharing!r}")
        if model.storage != "dense" and not is_sparse(model.A):
            raise ValueError(f"lean: storage {model.storage!r} did not give a sparse A")
        self.policy_len = spec.policy_len
        shared = _Model(model, copy=False) if spec.sharing == "shared" else None
        self.agents = [_Agent(shared or _Model(model, copy=True)) for _ in range(spec.agents)]

    def call(self, operation: str, step: StepInput) -> None:
        if operation == "infer_states":
            for agent in self.agents:
                agent.infer_states(step.observation[0])
        elif operation == "infer_policies":
            for agent in self.agents:
                agent.infer_policies(self.policy_len)
        elif operation == "sample_action":
            forced = step.reference_action
            for agent in self.agents:
                agent.own_action = agent.sample_action()
                # Teacher forcing: the next prior follows the reference's action.
                agent.action = agent.own_action if forced is None else int(forced[0])
        else:
            raise ValueError(f"unknown operation {operation!r}")

    def beliefs(self) -> Beliefs:
        agent = self.agents[0]
        return Beliefs(
            qs=np.array(agent.qs, dtype=np.float64),
            q_pi=np.array(agent.q_pi, dtype=np.float64),
            action=(agent.own_action,),
        )

    def reset(self) -> None:
        for agent in self.agents:
            agent.reset()


class Lean(Backend):
    name = "lean"
    storages = {"dense": None, "csr": None, "csc": None, "coo": None}
    dtypes = {"float64": None, "float32": None, "float16": _FLOAT16}
    libraries = {"numpy_version": "numpy", "scipy_version": "scipy"}
    import_mb = 120.0

    def world_reason(self, shape: ModelShape, version: str) -> str | None:
        if shape.factors == 1 and shape.modalities == 1:
            return None
        return (
            "lean runs one hidden-state factor and one observation modality; this world has "
            f"{shape.factors} factors and {shape.modalities} modalities"
        )

    def load(self) -> None:
        import scipy.sparse  # noqa: F401  (the sparse storages; A and B arrive built with it)

    def build_agents(self, model: StoredModel, spec: AgentSpec) -> Population:
        return LeanPopulation(model, spec)


BACKEND = Lean()
