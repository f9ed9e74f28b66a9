"""How far a variant's beliefs are from the reference's, step by step."""

from __future__ import annotations

import numpy as np

from memsweep.agents import Beliefs
from memsweep.harness.probes import ReferenceTrace
from memsweep.harness.reference import Reference

PROBE = ReferenceTrace.name
_TINY = 1e-300  # keeps log(0) finite where q gives zero mass to a state the reference does not


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) in nats, over the support of p."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    support = p > 0
    return float(np.sum(p[support] * (np.log(p[support]) - np.log(np.maximum(q[support], _TINY)))))


class Tracker:
    """Running maxima of the errors, one step at a time, over every factor's q(s) (KL: of
    their product) and every factor's action (an agreement: all of them equal).

    The harness scores each step as it happens instead of keeping every step's beliefs:
    what it holds must not show in the memory it measures.
    """

    def __init__(self, reference: Reference):
        self.reference = reference
        # Where each factor's q(s) starts and ends in the concatenated beliefs.
        bounds = np.cumsum((0, *reference.factor_states))
        self.factors = list(zip(bounds[:-1], bounds[1:], strict=True))
        self.steps = 0
        self.qs_error = self.kl = self.q_pi_error = 0.0
        self.agreements = 0

    def update(self, beliefs: Beliefs) -> None:
        t = self.steps
        if t >= self.reference.steps:
            raise ValueError(f"the reference has only {self.reference.steps} steps")
        reference_qs = self.reference.qs[t]
        qs = np.asarray(beliefs.qs, dtype=np.float64)
        q_pi = np.asarray(beliefs.q_pi, dtype=np.float64)
        self.qs_error = max(self.qs_error, float(np.max(np.abs(qs - reference_qs))))
        # q(s) is one distribution per factor, their product the joint: its KL is the sum.
        kl = sum(
            kl_divergence(reference_qs[start:stop], qs[start:stop]) for start, stop in self.factors
        )
        self.kl = max(self.kl, kl)
        self.q_pi_error = max(self.q_pi_error, float(np.max(np.abs(q_pi - self.reference.q_pi[t]))))
        self.agreements += int(np.array_equal(beliefs.action, self.reference.actions[t]))
        self.steps += 1

    def result(self) -> dict[str, float]:
        if self.steps == 0:
            raise ValueError("no step was scored")
        return {
            "max_abs_qs_error": self.qs_error,
            "max_kl_qs": self.kl,
            "max_abs_q_pi_error": self.q_pi_error,
            "action_agreement": self.agreements / self.steps,
        }
