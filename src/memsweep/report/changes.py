"""The changes a user would make: one axis at a time, from a backend's base configuration.

Per backend, its base configuration (:func:`memsweep.report.needed.largest`: at the
largest problem, the one whose changes were measured) is compared with
every measured configuration that differs from it in one setting a user chooses
(sharing, dtype, storage, policy length), every other axis equal: the saving of the
whole footprint (``total_peak_bytes [vmhwm]``, the kernel's peak of the whole process)
and of the configuration's biggest part under the backend's primary probe, with the
precision and time it costs. A change is judged by the whole footprint only: it
*saves* when it lowers it by at least :data:`~memsweep.report.hotspots.FIX_SHARE` and
the probe's resolution, *costs more* when it raises it as much, and otherwise saves
nothing measurable. Switching backend is listed apart: it changes every library in the
process, not a setting of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from memsweep.harness import probes
from memsweep.report.consumers import CONSUMERS
from memsweep.report.fixes import PRECISION, Saving
from memsweep.report.formats import Unresolved
from memsweep.report.hotspots import FIX_SHARE
from memsweep.report.needed import CHOICES, TOTAL, bases, heading, largest, primary_probe
from memsweep.report.queries import WORLD, Tables, one_axis, selector
from memsweep.world.base import DEFAULT_WORLD

# The settings a user changes within a backend.
AXES = CHOICES
# What a configuration's parts are: memory it holds, not rates or leftovers.
PART_KEYS = ("model_built", "agents", "call_temporaries", "first_call", "import")
SAVES, NO_SAVING, COSTS_MORE, NOT_COMPUTED = "saves", "no saving", "costs more", "not computed"
SECONDS = selector("summary", "all", "step_seconds", probes.CLOCK)
MODEL = selector("summary", "all", "model_bytes", probes.EXACT)
# Belief errors this small are float64 rounding, not a loss of precision.
NEGLIGIBLE = 1e-10
# Precision metrics where more is better (the others are errors: less is better).
HIGHER_IS_BETTER = ("action_agreement",)


@dataclass
class BiggestPart:
    """The largest resolved part of one configuration under one probe."""

    key: str  # the consumer's key
    operation: str
    sel: dict
    value: float
    fix_axes: tuple[str, ...]


@dataclass
class Change:
    axis: str
    old: str
    new: str
    variant: pd.Series  # the variant's config columns
    whole: Saving  # total footprint [vmhwm]
    verdict: str
    why: str  # where the verdict is NOT_COMPUTED or NO_SAVING: the figures or the reason
    part: Saving | None  # the biggest part under the primary probe, where the axis acts on it
    precision: dict[str, tuple[float | None, float | None]]
    seconds: tuple[float | None, float | None]

    @property
    def time_ratio(self) -> float | None:
        before, after = self.seconds
        return after / before if before and after else None


@dataclass
class Remedies:
    """One backend's largest configuration, its biggest part and every change from it."""

    backend: str
    base: pd.Series
    total: float
    probe: str  # the primary probe
    part: BiggestPart | None
    changes: list[Change]
    switches: list[Change]  # the same configuration in another backend
    model_bytes: float | None = None  # one model's exact bytes [nbytes]
    measured: pd.DataFrame | None = None  # every measured configuration (config columns)
    world: str = DEFAULT_WORLD  # the world of its base (its changes are within it)

    @property
    def title(self) -> str:
        """The backend, with its world where the words must name it (a sweep of several
        worlds, or one that is not the default)."""
        configs = self.measured if self.measured is not None else pd.DataFrame()
        return heading(self.backend, self.world, configs)

    @property
    def best(self) -> Change | None:
        saving = [c for c in self.changes if c.verdict == SAVES]
        return max(saving, key=lambda c: c.whole.bytes, default=None)

    @property
    def futile(self) -> list[Change]:
        return [c for c in self.changes if c.verdict in (NO_SAVING, COSTS_MORE)]


def biggest_part(tables: Tables, config_id: str, probe: str) -> BiggestPart | None:
    """The consumer with the largest resolved positive figure under ``probe``."""
    best = None
    for consumer in (c for c in CONSUMERS if c.key in PART_KEYS):
        metric = consumer.metrics.get(probe)
        if metric is None:
            continue
        for operation in consumer.operations(tables.frame):
            sel = selector(consumer.phase, operation, metric, probe)
            value = tables.figure(sel, config_id)
            if isinstance(value, float) and value > 0 and (best is None or value > best.value):
                best = BiggestPart(consumer.key, operation, sel, value, consumer.fix_axes)
    return best


def judge(saving: Saving, resolution: float) -> tuple[str, str]:
    """A whole-footprint saving's verdict and, where it is no saving, why."""
    if saving.bytes is None:
        return NOT_COMPUTED, saving.note or "not measured in both configurations"
    if not isinstance(saving.base, float) or saving.base <= 0:
        return NOT_COMPUTED, f"the base figure is {saving.base}, not a positive size"
    threshold = max(resolution, FIX_SHARE * saving.base)
    if saving.bytes >= threshold:
        return SAVES, ""
    if saving.bytes <= -threshold:
        return COSTS_MORE, ""
    return NO_SAVING, f"within {FIX_SHARE:.0%} of the base and {saving.probe}'s resolution"


def acts_on(part: BiggestPart | None, axis: str) -> bool:
    """Whether changing ``axis`` acts on the part (the import: only the backend does;
    the policy length acts wherever the other settings do)."""
    if part is None:
        return False
    return axis in part.fix_axes or (axis == "policy_len" and len(part.fix_axes) > 1)


def _figure(tables: Tables, sel: dict, config_id: str) -> float | Unresolved | None:
    return tables.figure(sel, config_id)


def change(tables: Tables, base: pd.Series, variant: pd.Series, axis: str, part) -> Change:
    whole = Saving(
        TOTAL.sel["probe"],
        _figure(tables, TOTAL.sel, base.config_id),
        _figure(tables, TOTAL.sel, variant.config_id),
    )
    verdict, why = judge(whole, tables.resolution.get(TOTAL.sel["probe"], 0.0))
    part_saving = (
        Saving(part.sel["probe"], part.value, _figure(tables, part.sel, variant.config_id))
        if acts_on(part, axis)
        else None
    )

    def both(sel: dict) -> tuple[float | None, float | None]:
        return tables.value(sel, base.config_id), tables.value(sel, variant.config_id)

    return Change(
        axis=axis,
        old=str(base[axis]),
        new=str(variant[axis]),
        variant=variant,
        whole=whole,
        verdict=verdict,
        why=why,
        part=part_saving,
        precision={
            metric: both(selector("precision", "step", metric, "reference_trace"))
            for metric in PRECISION
        },
        seconds=both(SECONDS),
    )


def precision_cost(c: Change) -> dict[str, tuple[float, float]] | None:
    """The precision metrics the change makes worse (base, variant); None where the
    precision of either configuration was not measured."""
    measured = {m: pair for m, pair in c.precision.items() if None not in pair}
    if not measured:
        return None

    def lost(metric: str, before: float, after: float) -> bool:
        return after < before if metric in HIGHER_IS_BETTER else after > max(before, NEGLIGIBLE)

    return {m: (b, a) for m, (b, a) in measured.items() if lost(m, b, a)}


def remedies(tables: Tables, backend: str, world: str | None = None) -> Remedies | None:
    """The backend's largest configuration in ``world`` (None: its first) with its changes,
    or None where it has none. Every change is within the base's world."""
    base = largest(tables, backend, world)
    if base is None:
        return None
    probe = primary_probe(backend)
    part = biggest_part(tables, base.config_id, probe)
    changes = [
        change(tables, base, variant, axis, part)
        for axis in AXES
        for _, variant in one_axis(tables.configs, base, axis).iterrows()
    ]
    # Across backends only the whole footprint compares: the primary probes differ.
    switches = [
        change(tables, base, variant, "backend", None)
        for _, variant in one_axis(tables.configs, base, "backend").iterrows()
    ]
    total = tables.value(TOTAL.sel, base.config_id)
    model = tables.value(MODEL, base.config_id)
    return Remedies(
        backend, base, total, probe, part, changes, switches, model, tables.configs,
        str(base[WORLD]) if WORLD in base else DEFAULT_WORLD,
    )  # fmt: skip


def every_backend(tables: Tables) -> list[Remedies]:
    """One per backend, and per world where the sweep measured several."""
    found = (remedies(tables, backend, world) for backend, world in bases(tables))
    return [r for r in found if r is not None]
