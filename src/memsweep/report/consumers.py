"""The consumers: the kinds of memory holder the report ranks.

A *consumer* is one thing that holds memory, named by the rows that measure it
(phase, operation, metric): an array of the model, the agents, the per-call
temporaries of an operation, the import, the growth over steps. Which probe measures
it with which metric follows from the probe registry (``memsweep.harness.probes``):
a new level or peak probe there is a new column of figures here, with no list to edit.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from memsweep.harness import probes
from memsweep.report.queries import REMEDIES


def _levels(metric: str) -> dict[str, str]:
    """Every level probe with its metric; ``{level}`` is the probe's ``level_metric``."""
    return {p.name: metric.format(level=p.level_metric) for p in probes.levels()}


def _peaks() -> dict[str, str]:
    return {name: "call_peak_bytes" for name in probes.peaks()}


def _grown() -> dict[str, str]:
    """What building grows: a level probe's growth, a peak-only probe's window peak."""
    grown = _levels("growth_bytes")
    return grown | {name: metric for name, metric in _peaks().items() if name not in grown}


@dataclass(frozen=True)
class Consumer:
    """One kind of memory holder and the metric each probe measures it with."""

    key: str
    kind: str
    what: str  # ``{operation}`` is filled in
    phase: str
    metrics: dict[str, str]
    operation: str | None = None  # None: one consumer per operation found in the data
    per_agent: bool = False  # the figure covers every agent of the configuration
    # Axes a fix may change: only those that act on this holder. Elsewhere a difference
    # between two runs is the probe's run-to-run spread, not a saving.
    fix_axes: tuple[str, ...] = REMEDIES

    def describe(self, operation: str) -> str:
        return self.what.format(operation=operation)

    def operations(self, frame: pd.DataFrame) -> list[str]:
        """The operations this consumer stands for in ``frame`` (its own, if it names one)."""
        if self.operation is not None:
            return [self.operation]
        chosen = frame[(frame.phase == self.phase) & (frame.status == "ok")]
        return sorted(chosen.operation.dropna().unique())


CONSUMERS = (
    Consumer("model_built", "arrays of the model as built",
             "the model as the backend builds it (A, B, C, D and any conversion it keeps)",
             "build", _grown(), operation="model"),
    Consumer("agents", "per-agent copy",
             "the agents: each agent's state, and its own copy of the model where "
             "sharing=private", "build", _grown(), operation="agents", per_agent=True),
    Consumer("call_temporaries", "per-call temporary",
             "temporaries of one {operation} call over all agents (peak above the call's start)",
             "step", _peaks(), per_agent=True),
    Consumer("first_call", "fixed compile cost",
             "the first {operation} call: compilation (JAX) and first-use caches",
             "compile", _peaks(), per_agent=True),
    Consumer("import", "fixed import cost",
             "importing the backend's libraries and its warm-up step (paid once per process)",
             "import", _levels("{level}_bytes"), operation="total", fix_axes=("backend",)),
    # Ranked by the steady slope after the last one-off jump: a jump (a program compiled,
    # an allocator's arena grown) at step 9 of 10 read as "333 MB per 100 steps" on the
    # plain slope. The jumps and the plain slope stay in the rows and the figure.
    Consumer("growth", "steady growth over steps",
             "memory gained per 100 steps of the first repeat after its last one-off jump "
             "(least-squares slope: a leak)",
             "growth", _levels("{level}_steady_growth_per_100_steps_bytes"),
             operation="step", per_agent=True),
    Consumer("retained", "retained after cleanup",
             "memory still held above the post-import baseline after the agents are dropped",
             "cleanup", _levels("retained_bytes"), operation="drop_agents"),
)  # fmt: skip
