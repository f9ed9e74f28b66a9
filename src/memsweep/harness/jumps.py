"""Growth over steps, split into one-off jumps and steady growth.

A level read after every step of the first repeat rises in two ways: once, when a call
fills a cache or compiles a program (a jump between two steps, then flat), and a little
every step (a leak). One least-squares slope over all steps mixes them: a 24 MB jump at
step 2 of 20 reads as "24 MB per 100 steps" of growth. Here a jump is a rise between two
consecutive steps well above the level's typical step-to-step change; the steady slope
is fitted over the steps after the last jump only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A rise between two steps is a jump when it is this many times the median step-to-step
# change and at least JUMP_FLOOR bytes (16 pages: below it, page-counting probes move by
# a page or two for reasons of their own).
JUMP_FACTOR = 10.0
JUMP_FLOOR = 64 * 1024
STEADY_POINTS = 3  # a slope needs this many steps after the last jump


@dataclass(frozen=True)
class Growth:
    jump_bytes: float  # the jumps' rises summed
    jumps: int
    steady_from: int  # the first step of the steady stretch
    steady_per_100_steps: float | None  # None: too few steps after the last jump
    reason: str | None = None  # why there is no steady slope


def split(steps, values) -> Growth:
    """The jumps and the steady slope of a level read after each of ``steps``."""
    order = np.argsort(np.asarray(steps, dtype=float))
    steps = np.asarray(steps, dtype=float)[order]
    values = np.asarray(values, dtype=float)[order]
    rises = np.diff(values)
    typical = float(np.median(np.abs(rises))) if len(rises) else 0.0
    threshold = max(JUMP_FLOOR, JUMP_FACTOR * typical)
    jumps = np.flatnonzero(rises > threshold)
    # After the last jump; with none, from the second step (the first call's one-off
    # allocations are in the first).
    start = int(jumps[-1]) + 1 if len(jumps) else min(1, len(steps) - 1)
    steady = slice(start, None)
    jump_bytes = float(rises[jumps].sum())
    if len(steps[steady]) < STEADY_POINTS:
        reason = (
            f"{len(steps[steady])} step(s) after the last jump (at step {int(steps[start])}), "
            f"a slope needs {STEADY_POINTS}"
        )
        return Growth(jump_bytes, len(jumps), int(steps[start]), None, reason)
    slope = float(np.polyfit(steps[steady], values[steady], 1)[0])
    return Growth(jump_bytes, len(jumps), int(steps[start]), 100 * slope)
