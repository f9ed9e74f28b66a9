"""The precision metrics on variants of a reference whose error is known in advance."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from memsweep.agents import Beliefs
from memsweep.harness.precision import Tracker, kl_divergence
from memsweep.harness.reference import make_reference
from memsweep.world.base import WorldSettings


@pytest.fixture(scope="module")
def ref():
    return make_reference(WorldSettings(grid=5), policy_len=1, steps=10)


def history_of(ref, qs=None, q_pi=None, actions=None):
    qs = ref.qs if qs is None else qs
    q_pi = ref.q_pi if q_pi is None else q_pi
    actions = ref.actions if actions is None else actions
    return [
        Beliefs(
            qs=np.asarray(qs[t], np.float64),
            q_pi=np.asarray(q_pi[t]),
            action=tuple(int(a) for a in actions[t]),
        )
        for t in range(ref.steps)
    ]


def compare(history, reference) -> dict[str, float]:
    """Score a whole history step by step, as the harness does."""
    tracker = Tracker(reference)
    for beliefs in history:
        tracker.update(beliefs)
    return tracker.result()


def float32_round_trip(x: float) -> float:
    """x rounded to IEEE single precision by the struct module (not by numpy)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def test_reference_against_itself_is_exact(ref):
    scores = compare(history_of(ref), ref)
    assert scores == {
        "max_abs_qs_error": 0.0,
        "max_kl_qs": 0.0,
        "max_abs_q_pi_error": 0.0,
        "action_agreement": 1.0,
    }


def test_float32_cast_scores_its_rounding_error(ref):
    scores = compare(history_of(ref, qs=ref.qs.astype(np.float32)), ref)
    expected = max(abs(x - float32_round_trip(x)) for x in ref.qs.ravel().tolist())
    assert expected > 0  # the trace has entries float32 cannot hold exactly
    assert scores["max_abs_qs_error"] == expected
    assert scores["max_abs_q_pi_error"] == 0.0
    assert scores["action_agreement"] == 1.0
    # KL per step by hand (math.log, math.fsum), the largest over steps.
    by_hand = max(
        math.fsum(p * (math.log(p) - math.log(float32_round_trip(p))) for p in row if p > 0)
        for row in ref.qs.tolist()
    )
    assert scores["max_kl_qs"] == pytest.approx(by_hand, rel=1e-6, abs=1e-15)


def test_one_changed_action_costs_one_step_of_agreement(ref):
    actions = ref.actions.copy()
    actions[3] = (actions[3] + 1) % 5
    scores = compare(history_of(ref, actions=actions), ref)
    assert scores["action_agreement"] == (ref.steps - 1) / ref.steps
    assert scores["max_abs_qs_error"] == 0.0


def test_q_pi_error_is_the_largest_shift(ref):
    q_pi = ref.q_pi.copy()
    q_pi[2, 1] += 0.25
    q_pi[5, 0] -= 0.5
    scores = compare(history_of(ref, q_pi=q_pi), ref)
    assert scores["max_abs_q_pi_error"] == pytest.approx(0.5, abs=1e-15)


def test_the_tracker_scores_a_prefix_and_refuses_bad_lengths(ref):
    assert compare(history_of(ref)[:4], ref)["action_agreement"] == 1.0
    with pytest.raises(ValueError):
        compare([], ref)
    with pytest.raises(ValueError):
        compare(history_of(ref) + history_of(ref)[:1], ref)


@pytest.mark.parametrize(
    ("p", "q", "nats"),
    [
        ([0.5, 0.5], [0.5, 0.5], 0.0),
        ([0.5, 0.5], [0.25, 0.75], 0.5 * math.log(2) + 0.5 * math.log(2 / 3)),
        ([1.0, 0.0], [0.5, 0.5], math.log(2)),  # zero-mass states of p do not count
        ([0.25, 0.25, 0.5], [0.5, 0.25, 0.25], 0.25 * math.log(0.5) + 0.5 * math.log(2)),
        # q puts no mass where p has some: finite, through the 1e-300 floor.
        ([1.0, 0.0], [0.0, 1.0], 300 * math.log(10)),
    ],
)
def test_kl_divergence_by_hand(p, q, nats):
    assert kl_divergence(np.array(p), np.array(q)) == pytest.approx(nats, rel=1e-12, abs=1e-15)
