"""Growth over steps split into one-off jumps and a steady slope, on levels made by hand."""

from __future__ import annotations

import numpy as np
import pytest

from memsweep.harness import jumps

MB = 1_000_000


def test_a_one_off_jump_is_not_growth():
    """24 MB at step 2, then flat: one jump of 24 MB and no steady growth (a slope over
    every step would call it growth)."""
    steps = np.arange(20)
    values = np.where(steps >= 2, 124 * MB, 100 * MB).astype(float)
    found = jumps.split(steps, values)
    assert found.jumps == 1 and found.jump_bytes == 24 * MB
    assert found.steady_from == 2
    assert found.steady_per_100_steps == pytest.approx(0.0, abs=1e-6)
    assert np.polyfit(steps[1:], values[1:], 1)[0] > 0  # what the plain slope says


def test_a_steady_leak_after_a_jump_is_measured_from_the_jump_on():
    steps = np.arange(20)
    leak = 10_000.0  # bytes per step: 1 MB per 100 steps
    values = 50 * MB + leak * steps + np.where(steps >= 3, 30 * MB, 0)
    found = jumps.split(steps, values)
    assert (found.jumps, found.jump_bytes) == (1, pytest.approx(30 * MB + leak))
    assert found.steady_from == 3
    assert found.steady_per_100_steps == pytest.approx(100 * leak)


def test_no_jump_keeps_the_slope_from_the_second_step():
    steps = np.arange(10)
    values = 1 * MB + 5_000.0 * steps
    found = jumps.split(steps[::-1], values[::-1])  # order does not matter
    assert found.jumps == 0 and found.jump_bytes == 0
    assert found.steady_from == 1
    assert found.steady_per_100_steps == pytest.approx(500_000.0)


def test_rises_under_the_floor_are_never_jumps():
    """Page-counting probes move by a page or two now and then: not a jump."""
    steps = np.arange(10)
    values = np.full(10, 80 * MB)
    values[4:] += 8192  # two pages
    assert jumps.split(steps, values).jumps == 0


def test_a_jump_at_the_end_leaves_no_slope_and_says_why():
    steps = np.arange(6)
    values = np.where(steps >= 4, 90 * MB, 10 * MB).astype(float)
    found = jumps.split(steps, values)
    assert found.steady_per_100_steps is None
    assert found.reason == "2 step(s) after the last jump (at step 4), a slope needs 3"
