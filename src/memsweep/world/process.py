"""A model's own generative process: the environment of a world that has no other.

The true hidden state of each factor is drawn from D, each next state from B given the
states of the factors it depends on and the factor's action, each observation from A
given the states of the factors its modality depends on. One seeded numpy generator
draws them all, in a fixed order (factors, then modalities), so equal seeds give equal
traces.
"""

from __future__ import annotations

import numpy as np

from memsweep.world.model import Model


def _column(array, index: tuple[int, ...]) -> np.ndarray:
    """``array[:, *index]`` as a float64 vector (a dense array or a list of matrices)."""
    if isinstance(array, list):  # B as one (N, N) matrix per action: index = (state, action)
        matrix = array[index[-1]]
        column = matrix[:, [index[0]]]
        column = column.toarray() if hasattr(column, "toarray") else column
        return np.asarray(column, dtype=np.float64).ravel()
    column = array[(slice(None), *index)]
    column = column.toarray() if hasattr(column, "toarray") else column
    return np.asarray(column, dtype=np.float64).ravel()


class GenerativeProcess:
    def __init__(self, model: Model, seed: int):
        self.model = model
        self.rng = np.random.default_rng(seed)
        self.state: list[int] = []

    def _draw(self, probabilities: np.ndarray) -> int:
        cells = np.flatnonzero(probabilities)
        return int(self.rng.choice(cells, p=probabilities[cells] / probabilities[cells].sum()))

    def _observe(self) -> tuple[int, ...]:
        model = self.model
        return tuple(
            self._draw(_column(a, tuple(self.state[f] for f in deps)))
            for a, deps in zip(model.A, model.A_dependencies, strict=True)
        )

    def reset(self) -> tuple[int, ...]:
        self.state = [self._draw(np.asarray(d, dtype=np.float64)) for d in self.model.D]
        return self._observe()

    def step(self, actions) -> tuple[int, ...]:
        model = self.model
        self.state = [
            self._draw(_column(b, (*(self.state[g] for g in deps), int(actions[f]))))
            for f, (b, deps) in enumerate(zip(model.B, model.B_dependencies, strict=True))
        ]
        return self._observe()
