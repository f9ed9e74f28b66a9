"""A memory predictor fitted to a sweep's measurements, as the plan reads it.

``results/model/predictor.json`` (written by :mod:`memsweep.report.predictor`) holds,
per backend, one fit ``a + b·x^k`` for each consumer of a job's peak resident memory,
all read by one probe: the ``fixed`` per-process cost, the ``model`` as built, what
building the ``agents`` adds, and what their ``calls`` add beyond the build. ``x`` is
what the consumer scales with, in MB by arithmetic (:func:`memsweep.plan.predict.sizes`).
A job's prediction is the sum of its consumers.

Planning runs at Snakemake's parse time, so this is JSON and arithmetic only: the
fitting (scipy) lives in the report layer, and the intervals' Student t quantiles are
stored with the fits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from memsweep.plan.jobs import ALLOCATOR, allocator_words
from memsweep.world.base import DEFAULT_WORLD

# The consumers of a job's peak, in the order they are built up; their sum is the peak.
CONSUMERS = ("fixed", "model", "agents", "calls")
FORMAT = 1  # the JSON layout below; a reader refuses another


class PredictorError(ValueError):
    """A predictor file that cannot be read as one (named, with why)."""


@dataclass(frozen=True)
class Part:
    """One consumer's predicted MB and the ends of its 95 % prediction interval."""

    mb: float
    low: float
    high: float


@dataclass(frozen=True)
class Fit:
    """``a + b·x^k`` (MB) with the parameters' covariance, the residual variance and the
    Student t quantile of its degrees of freedom: a prediction interval at any ``x``."""

    a: float
    b: float
    k: float
    covariance: tuple[tuple[float, ...], ...]  # of (a, b, k); zeros for a fixed parameter
    residual_variance: float
    t: float | None  # None: too few points for an interval
    x_range: tuple[float, float]  # the measured x: beyond it the fit extrapolates

    @classmethod
    def from_dict(cls, data: dict) -> Fit:
        return cls(
            float(data["a"]),
            float(data["b"]),
            float(data["k"]),
            tuple(tuple(float(v) for v in row) for row in data["covariance"]),
            float(data["residual_variance"]),
            None if data["t"] is None else float(data["t"]),
            (float(data["x_range"][0]), float(data["x_range"][1])),
        )

    def mb(self, x: float) -> float:
        return self.a + self.b * _power(x, self.k)

    def part(self, x: float) -> Part:
        """The value at ``x`` and its interval: the fit's own uncertainty at ``x`` (delta
        method through the covariance) plus one measurement's scatter."""
        value = self.mb(x)
        if self.t is None:
            return Part(value, math.nan, math.nan)
        gradient = (1.0, _power(x, self.k), self.b * _power(x, self.k) * _log(x))
        variance = sum(
            gradient[i] * self.covariance[i][j] * gradient[j] for i in range(3) for j in range(3)
        )
        half = self.t * math.sqrt(max(variance, 0.0) + self.residual_variance)
        return Part(value, max(value - half, 0.0), value + half)

    def extrapolates(self, x: float) -> bool:
        return not self.x_range[0] <= x <= self.x_range[1]


def _power(x: float, k: float) -> float:
    return x**k if x > 0 else 0.0


def _log(x: float) -> float:
    return math.log(x) if x > 0 else 0.0


@dataclass(frozen=True)
class Predictor:
    """The fits of one predictor file: backend -> consumer -> :class:`Fit`."""

    fits: dict[str, dict[str, Fit]]
    probe: str
    whole_process: bool  # the fixed cost was measured: the sum is the whole process's peak
    memsweep_version: str
    code_digests: dict[str, str]  # backend -> digest of the code that measured it
    source: str = ""  # the path it was read from, for messages
    measured: dict | None = None  # backend -> {"jobs": n, "grids": [...]}

    def covers(self, backend: str) -> bool:
        """Whether every consumer of ``backend`` has a fit (else the plan uses the
        analytic formula for it)."""
        return self.whole_process and set(CONSUMERS) <= set(self.fits.get(backend, {}))

    def parts(self, backend: str, sizes: dict[str, float]) -> dict[str, Part]:
        """Each consumer's prediction at ``sizes`` (consumer -> x, MB)."""
        fits = self.fits[backend]
        return {name: fits[name].part(sizes[name]) for name in CONSUMERS if name in fits}

    def peak_mb(self, backend: str, sizes: dict[str, float]) -> float:
        return sum(part.mb for part in self.parts(backend, sizes).values())


def key(backend: str, world: str | None = None, allocator: dict | None = None) -> str:
    """What a predictor's fits are keyed by: the backend for memsweep's grid world, the
    backend and the world for any other (a world's agents cost what its arrays cost in
    that backend, which no size of the grid world's fit foretells: PyMDP's JAX agent
    builds a cue-chaining population with 4× the grid world's memory at equal model bytes),
    and the allocator's settings where they are not memsweep's (glibc's dynamic mmap
    threshold leaves JAX's G=15 peak 491-545 MB in three identical processes, 467-475
    with it fixed: benchmarks/results/allocator.md). ``allocator``: setting -> value,
    those it leaves out memsweep's defaults."""
    parts = [backend]
    if world is not None and world != DEFAULT_WORLD:
        parts.append(world)
    return " · ".join([*parts, *allocator_words(allocator or {})])


def job_key(job) -> str:
    """A job's predictor key (:func:`key`): its backend, its world and its allocator."""
    return key(job.backend, job.world, {name: getattr(job, name) for name in ALLOCATOR})


def total(parts: dict[str, Part]) -> Part:
    """The sum of the parts, with the interval's ends summed too: the consumers are fitted
    on the same jobs, so no cancellation between their errors is assumed."""
    return Part(*(sum(getattr(p, end) for p in parts.values()) for end in ("mb", "low", "high")))


def from_json(text: str, source: str = "") -> Predictor:
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise PredictorError(f"format {data.get('format')!r}, this memsweep reads {FORMAT}")
    fits = {
        backend: {name: Fit.from_dict(fit) for name, fit in entry["fits"].items()}
        for backend, entry in data["backends"].items()
    }
    measured = {
        backend: {"jobs": entry["jobs"], "grids": entry["grids"]}
        for backend, entry in data["backends"].items()
    }
    return Predictor(
        fits,
        data["probe"],
        bool(data["whole_process"]),
        data["memsweep_version"],
        dict(data["code_digests"]),
        source,
        measured,
    )


def load(path: str | Path) -> Predictor | None:
    """The predictor at ``path``; None where there is no file (the analytic formula then)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return from_json(text, str(path))
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise PredictorError(f"{path}: not a memsweep predictor ({error})") from None
