"""How far a variant's beliefs are from the reference's, step by step."""

from __future__ import annotations

import numpy as np

from .agents import Beliefs
from .reference import Reference

PROBE = "reference_trace"
_TINY = 1e-300  # keeps log(0) finite where q gives zero mass to a state the reference does not


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) in nats, over the support of p."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    support = p > 0
    return float(np.sum(p[support] * (np.log(p[support]) - np.log(np.maximum(q[support], _TINY)))))


def compare(history: list[Beliefs], reference: Reference) -> dict[str, float]:
    """Max errors over the steps of ``history`` against the same steps of ``reference``."""
    steps = len(history)
    if steps == 0 or steps > reference.steps:
        raise ValueError(f"need 1..{reference.steps} steps of beliefs, got {steps}")
    qs = np.array([b.qs for b in history], dtype=np.float64)
    q_pi = np.array([b.q_pi for b in history], dtype=np.float64)
    actions = np.array([b.action for b in history])
    return {
        "max_abs_qs_error": float(np.max(np.abs(qs - reference.qs[:steps]))),
        "max_kl_qs": max(
            kl_divergence(r, q) for r, q in zip(reference.qs[:steps], qs, strict=True)
        ),
        "max_abs_q_pi_error": float(np.max(np.abs(q_pi - reference.q_pi[:steps]))),
        "action_agreement": float(np.mean(actions == reference.actions[:steps])),
    }
