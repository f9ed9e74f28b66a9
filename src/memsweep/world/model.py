"""A generative model as every world hands it over: float64 arrays, one per modality and
factor, and which factors each depends on. Checked here, in the words every error uses.

The conventions are PyMDP's (1.0's JAX agent and its legacy numpy agent alike):

* ``A[m]``: P(o_m | s) with shape ``(observations of m, *states of A_dependencies[m])``;
* ``B[f]``: P(s_f' | s, u_f) with shape ``(states of f, *states of B_dependencies[f],
  actions of f)``, or, for a factor that depends on itself only, a list of one
  ``(states, states)`` matrix per action (the grid world keeps them sparse);
* ``C[m]``: log-preferences over modality m's observations; ``D[f]``: the prior over
  factor f's states;
* columns (axis 0) of every A and B, and every D, sum to one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# How far a column's float64 sum may stray from one: a model is renormalised in the job's
# dtype when it is stored (memsweep.world.storage.store), so this only catches a wrong
# model, not rounding.
TOLERANCE = 1e-6


class ModelError(ValueError):
    """A model that cannot be measured; ``str()`` names every array that is wrong."""


def _dense(array) -> np.ndarray:
    return array.toarray() if hasattr(array, "toarray") else np.asarray(array)


def _shape(array) -> tuple[int, ...]:
    return tuple(int(n) for n in array.shape)


@dataclass
class Model:
    A: list
    B: list
    C: list
    D: list
    A_dependencies: list[list[int]] = field(default_factory=list)
    B_dependencies: list[list[int]] = field(default_factory=list)

    def __post_init__(self):
        # Defaults PyMDP uses: every modality sees every factor; each factor moves alone.
        if not self.A_dependencies:
            self.A_dependencies = [list(range(len(self.B))) for _ in self.A]
        if not self.B_dependencies:
            self.B_dependencies = [[f] for f in range(len(self.B))]

    @property
    def states(self) -> list[int]:
        """States of each hidden-state factor."""
        return [int(np.asarray(d).shape[0]) for d in self.D]

    @property
    def observations(self) -> list[int]:
        return [int(a.shape[0]) for a in self.A]

    @property
    def actions(self) -> list[int]:
        """Actions (control states) of each factor: 1 for a factor nothing controls."""
        return [len(b) if isinstance(b, list) else int(b.shape[-1]) for b in self.B]

    @property
    def factorised(self) -> bool:
        """Whether a modality sees fewer than every factor or a factor depends on another:
        what an agent must be told (PyMDP's ``A_factor_list``, ``B_factor_list``)."""
        every = list(range(len(self.B)))
        return any(deps != every for deps in self.A_dependencies) or any(
            deps != [f] for f, deps in enumerate(self.B_dependencies)
        )

    def problems(self) -> list[str]:
        """Everything wrong with the model, each naming its array; empty if nothing is."""
        found = []
        for name in ("A", "B", "C", "D"):
            if not isinstance(getattr(self, name), list | tuple) or not getattr(self, name):
                found.append(f"{name}: must be a non-empty list of arrays")
        if found:
            return found
        if len(self.C) != len(self.A):
            found.append(f"C: {len(self.C)} arrays for {len(self.A)} modalities (one each)")
        if len(self.D) != len(self.B):
            found.append(f"D: {len(self.D)} arrays for {len(self.B)} factors (one each)")
        if len(self.A_dependencies) != len(self.A):
            found.append(f"A_dependencies: {len(self.A_dependencies)} lists for {len(self.A)} A")
        if len(self.B_dependencies) != len(self.B):
            found.append(f"B_dependencies: {len(self.B_dependencies)} lists for {len(self.B)} B")
        for f, d in enumerate(self.D):
            found += _distribution(f"D[{f}]", np.asarray(d), vector=True)
        if found:
            return found
        states = self.states
        for kind, arrays, deps_of in (
            ("A", self.A, self.A_dependencies),
            ("B", self.B, self.B_dependencies),
        ):
            for index, (array, deps) in enumerate(zip(arrays, deps_of, strict=True)):
                name = f"{kind}[{index}]"
                bad = [d for d in deps if not (isinstance(d, int) and 0 <= d < len(states))]
                if bad or not deps:
                    last = len(states) - 1
                    found.append(f"{kind}_dependencies[{index}]: {deps} must name factors 0…{last}")
                    continue
                found += _conditional(name, kind, array, [states[d] for d in deps], index, states)
        for m, c in enumerate(self.C):
            if not found and _shape(np.asarray(c)) != (self.observations[m],):
                found.append(
                    f"C[{m}]: shape {_shape(np.asarray(c))}, expected "
                    f"({self.observations[m]},) (one preference per observation of A[{m}])"
                )
            elif not np.isfinite(np.asarray(c, dtype=float)).all():
                found.append(f"C[{m}]: holds a value that is not finite")
        return found

    def check(self) -> Model:
        problems = self.problems()
        if problems:
            raise ModelError("; ".join(problems))
        return self

    def save(self, path: str | os.PathLike, prefix: str = "") -> dict[str, np.ndarray]:
        """The model's arrays as ``.npz`` entries (``A_0`` …, dependencies as JSON);
        written to ``path`` unless it is None."""
        entries = {f"{prefix}dependencies": np.array(json.dumps(self._dependencies()))}
        for name in ("A", "B", "C", "D"):
            for index, array in enumerate(getattr(self, name)):
                if isinstance(array, list):  # one matrix per action -> (N, N, actions)
                    array = np.stack([_dense(matrix) for matrix in array], axis=-1)
                entries[f"{prefix}{name}_{index}"] = _dense(array).astype(np.float64)
        if path is not None:
            np.savez(path, **entries)
        return entries

    def _dependencies(self) -> dict:
        return {"A": self.A_dependencies, "B": self.B_dependencies}

    @classmethod
    def from_arrays(cls, data, prefix: str = "") -> Model:
        """The model in ``data`` (an opened ``.npz`` or a dict): ``A_0``, ``A_1``…, ``B_0``…,
        ``C_…``, ``D_…`` and, where factors depend on others, ``dependencies`` (JSON)."""
        keys = list(data.keys())
        arrays = {}
        for name in ("A", "B", "C", "D"):
            count = 0
            while f"{prefix}{name}_{count}" in keys:
                count += 1
            arrays[name] = [
                np.asarray(data[f"{prefix}{name}_{i}"], np.float64) for i in range(count)
            ]
        deps = {}
        if f"{prefix}dependencies" in keys:
            deps = json.loads(str(np.asarray(data[f"{prefix}dependencies"])))
        for kind in ("A", "B"):  # a user's file may give them one by one
            if f"{prefix}{kind}_dependencies" in keys:
                deps[kind] = json.loads(str(np.asarray(data[f"{prefix}{kind}_dependencies"])))
        return cls(**arrays, A_dependencies=deps.get("A") or [], B_dependencies=deps.get("B") or [])

    @classmethod
    def load(cls, path: str | os.PathLike, prefix: str = "") -> Model:
        with np.load(Path(path)) as data:
            return cls.from_arrays(data, prefix)


def _distribution(name: str, array: np.ndarray, vector: bool = False) -> list[str]:
    """Whether ``array``'s columns (axis 0) are probability distributions."""
    if vector and array.ndim != 1:
        return [f"{name}: must be a vector (shape {_shape(array)})"]
    if not np.issubdtype(array.dtype, np.number):
        return [f"{name}: holds {array.dtype}, not numbers"]
    if not np.isfinite(array).all():
        return [f"{name}: holds a value that is not finite"]
    if (array < 0).any():
        return [f"{name}: holds a negative probability"]
    sums = np.asarray(array.sum(axis=0))
    worst = np.unravel_index(np.argmax(np.abs(sums - 1.0)), sums.shape)
    if abs(float(sums[worst]) - 1.0) > TOLERANCE:
        # The column's own sum (below or above one), and its index as plain ints (numpy 2
        # writes its integers as np.int64(0)).
        where = "" if vector else f" (column {tuple(int(i) for i in worst)})"
        return [f"{name}: columns must sum to 1, one sums to {float(sums[worst]):.6g}{where}"]
    return []


def _conditional(name, kind, array, dep_states, index, states) -> list[str]:
    """A[m] or B[f]: its shape against the factors it depends on, and its columns."""
    if isinstance(array, list):  # B as one matrix per action
        if kind != "B" or not array:
            return [f"{name}: must be an array"]
        expected = (states[index], *dep_states)
        for action, matrix in enumerate(array):
            if _shape(matrix) != expected:
                return [f"{name}[action {action}]: shape {_shape(matrix)}, expected {expected}"]
            problems = _distribution(f"{name}[action {action}]", _dense(matrix))
            if problems:
                return problems
        return []
    shape = _shape(array)
    if kind == "A":
        ok = len(shape) == 1 + len(dep_states) and list(shape[1:]) == dep_states
        expected = f"(observations, {', '.join(map(str, dep_states))})"
    else:
        ok = (
            len(shape) == 2 + len(dep_states)
            and shape[0] == states[index]
            and list(shape[1:-1]) == dep_states
        )
        expected = f"({states[index]}, {', '.join(map(str, dep_states))}, actions)"
    if not ok:
        return [f"{name}: shape {shape}, expected {expected} from D and {kind}_dependencies"]
    return _distribution(name, _dense(array))
