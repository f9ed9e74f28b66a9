"""Fixes: measured configurations one axis away from a hotspot's worst one.

A fix is a measured configuration that differs from the hotspot's worst
configuration in one axis only (backend, storage, dtype or sharing); its saving
is the difference of the two configurations' figures under the same probe. No
saving is computed under a probe that cannot see one of the two backends, nor from a
figure below its probe's resolution (the saving then says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from memsweep import agents
from memsweep.harness import probes
from memsweep.report.formats import Unresolved
from memsweep.report.queries import (
    FOOTPRINTS,
    REMEDIES,
    Tables,
    figure_of,
    is_resolved,
    one_axis,
    rows,
    selector,
    summarised_by,
    summed,
)

PRECISION = ("max_abs_qs_error", "max_kl_qs", "action_agreement")
# Probes that set no saving: USS moves by whole library mappings when other processes
# start or stop, so a difference of two runs' USS is not the change's doing.
NEVER_SAVES = (probes.USS,)


@dataclass
class Saving:
    """``base`` against ``variant`` under one probe (positive: the variant holds less).

    A figure below its probe's resolution is :class:`Unresolved`: no saving is computed
    from it (``bytes`` and ``fraction`` are None) and ``note`` says which one it was.
    """

    probe: str
    base: float | Unresolved | None
    variant: float | Unresolved | None
    note: str = ""  # how the variant's figure was read, where not like the base's

    def __post_init__(self):
        below = [
            f"{name} below {self.probe}'s resolution ({figure})"
            for name, figure in (("base", self.base), ("variant", self.variant))
            if isinstance(figure, Unresolved)
        ]
        self.note = "; ".join(filter(None, [*below, self.note]))

    @property
    def unresolved(self) -> bool:
        return isinstance(self.base, Unresolved) or isinstance(self.variant, Unresolved)

    @property
    def bytes(self) -> float | None:
        if self.base is None or self.variant is None or self.unresolved:
            return None
        return self.base - self.variant

    @property
    def fraction(self) -> float | None:
        saved = self.bytes
        return None if saved is None or not self.base else saved / self.base


@dataclass
class Fix:
    axis: str
    old: str
    new: str
    variant: str  # config_id
    saving: dict[str, Saving]  # probe -> the consumer's saving
    footprint: dict[str, Saving]  # family -> the whole configuration's saving
    precision: dict[str, tuple[float | None, float | None]]  # metric -> (base, variant)
    step_seconds: tuple[float | None, float | None]
    agents: int

    def label(self) -> str:
        return f"{self.axis} {self.old} → {self.new}"


def blind_probes(backend: str) -> tuple[str, ...]:
    """The probes a backend declares blind to it; a backend not installed here: none."""
    try:
        return agents.get(backend).blind_probes
    except agents.UnknownBackend:
        return ()


def blind(probe: str, *configs: pd.Series) -> str:
    """Why ``probe`` cannot compare these configurations, or ''."""
    unseen = sorted({c["backend"] for c in configs if probe in blind_probes(c["backend"])})
    return f"{probe} cannot see {', '.join(unseen)}'s memory" if unseen else ""


def neighbours(configs: pd.DataFrame, base: pd.Series) -> pd.DataFrame:
    """Configurations that differ from ``base`` in exactly one of :data:`REMEDIES`."""
    found = [one_axis(configs, base, axis).assign(axis=axis) for axis in REMEDIES]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame()


def _variant_value(tables: Tables, sel: dict, config_id: str) -> tuple[float | None, str]:
    """The variant's figure; for an operation it does not have (another backend), the
    sum over the operations it has in that phase: JAX's one ``step`` does the work of
    numpy's ``infer_states`` + ``infer_policies`` + ``sample_action`` (resolved as
    :func:`~memsweep.report.queries.summed` says)."""
    value = tables.figure(sel, config_id)
    if value is not None or sel["operation"] is None:
        return value, ""
    chosen = rows(tables.frame, {**sel, "operation": None}, tables.resolution)
    chosen = chosen[chosen.config_id == config_id]
    if chosen.empty:
        return None, ""
    per_operation = chosen.groupby("operation").agg(
        value=("value", summarised_by(sel["metric"])), resolution=("resolution", "max")
    )
    per_operation = per_operation.assign(
        resolved=is_resolved(per_operation.value, per_operation.resolution)
    )
    total, resolution = summed(per_operation)
    figure = Unresolved(resolution) if abs(total) < resolution else total
    return figure, f"variant: sum over its {', '.join(per_operation.index)}"


def _footprint(tables: Tables, family: str, base: pd.Series, variant: pd.Series) -> Saving:
    """The whole configuration's saving in one probe family (none if a probe is blind)."""
    why = next(filter(None, (blind(part[3], base, variant) for part in FOOTPRINTS[family])), "")
    if why:
        return Saving(family, None, None, why)
    table = tables.footprint(family)
    return Saving(family, figure_of(table, base.config_id), figure_of(table, variant.config_id))


def fix(tables: Tables, selectors: dict, base: pd.Series, variant: pd.Series) -> Fix:
    """``variant`` as a fix of the hotspot that ``selectors`` (probe -> rows) measure."""
    saving = {}
    for probe, sel in selectors.items():
        if probe in NEVER_SAVES:
            continue
        why = blind(probe, base, variant)
        if why:
            saving[probe] = Saving(probe, None, None, why)
            continue
        value, note = _variant_value(tables, sel, variant.config_id)
        saving[probe] = Saving(probe, tables.figure(sel, base.config_id), value, note)

    def both(sel: dict) -> tuple[float | None, float | None]:
        return tables.value(sel, base.config_id), tables.value(sel, variant.config_id)

    return Fix(
        axis=variant["axis"],
        old=str(base[variant["axis"]]),
        new=str(variant[variant["axis"]]),
        variant=variant.config_id,
        saving=saving,
        footprint={family: _footprint(tables, family, base, variant) for family in FOOTPRINTS},
        precision={
            metric: both(selector("precision", "step", metric, "reference_trace"))
            for metric in PRECISION
        },
        step_seconds=both(selector("summary", "all", "step_seconds", probes.CLOCK)),
        agents=int(base.agents),
    )


def unavailable(plan: pd.DataFrame | None, base: pd.Series, measured: pd.DataFrame) -> list:
    """One-axis variants the plan did not run (unsupported, over budget), with the reason."""
    if plan is None or plan.empty:
        return []
    out = []
    for axis in REMEDIES:
        near = one_axis(plan, base, axis)
        near = near[~near.config_id.isin(measured.config_id)]
        for _, row in near.iterrows():
            reason = row.get("reason") if row.status != "run" else None
            out.append((axis, str(row[axis]), str(reason or f"planned ({row.status}), no ok rows")))
    return out
