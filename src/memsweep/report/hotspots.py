"""Hotspots: what holds the memory, ranked by measured bytes, each with a measured fix.

Each probe ranks the consumers (:mod:`memsweep.report.consumers`) on its own,
because figures of different probes are never compared: tracemalloc is blind to
XLA's buffers, and VmHWM misses a temporary that reuses heap pages already
resident. A hotspot's rank is its best rank under any probe; its fixes are the
measured one-axis variants of its worst configuration (:mod:`memsweep.report.fixes`).
Figures below their probe's resolution rank nothing, set no share and enter no fit:
they are kept only to be shown as ``< N`` (:func:`memsweep.report.queries.figure`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from memsweep.harness import probes
from memsweep.report import fixes
from memsweep.report.consumers import CONSUMERS, Consumer
from memsweep.report.fits import Fit, scaling
from memsweep.report.fixes import Fix
from memsweep.report.queries import (
    REMEDIES,
    WORLD,
    Resolution,
    Tables,
    selector,
    several_worlds,
    slice_of,
)

# A fix must save at least this share of the hotspot under its ranking probe: smaller
# differences are within the run-to-run spread of the process probes.
FIX_SHARE = 0.05
# A configuration "has" a hotspot where it measures at least this share of the worst one.
WHERE_SHARE = 0.25
# Under each probe, a consumer ranks only if its worst figure is at least this share of
# that probe's largest consumer: a probe that sees few consumers (nbytes sees the four
# model arrays) would otherwise rank kilobyte arrays beside hundred-megabyte imports.
RANK_SHARE = 0.01
# The axes along which the report says where a hotspot appears.
WHERE_AXES = ("backend", "storage", "dtype", "sharing", "grid", "agents")


@dataclass
class Hotspot:
    consumer: Consumer
    operation: str
    rank: int
    ranks: dict[str, int]  # probe -> rank within that probe
    probe: str  # the probe it ranks best under: its fix is chosen by this probe's figure
    # probe -> the worst configuration's row (value, rows, axes, resolved): the largest
    # resolved positive figure, or where there is none, the largest figure
    worst: dict[str, pd.Series]
    selectors: dict[str, dict]
    where: dict[str, list]
    fits: dict[str, dict[str, Fit | None]]  # probe -> {"states": Fit, "agents": Fit}
    fit_configs: list[str]
    fixes: list[Fix] = field(default_factory=list)
    unavailable: list[tuple[str, str, str]] = field(default_factory=list)  # axis, value, reason

    @property
    def what(self) -> str:
        return self.consumer.describe(self.operation)

    @property
    def base(self) -> pd.Series:
        return self.worst[self.probe]

    @property
    def fix(self) -> Fix | None:
        """The one-axis variant that saves most under the ranking probe, if any saves."""
        return self.fix_under(self.probe)

    def fix_under(self, probe: str) -> Fix | None:
        """The one-axis variant that saves most under ``probe``, if any saves: a change
        within the backend (sharing, dtype, storage, depth) before a switch of backend,
        which a user makes last; never one that makes the whole resident footprint worse."""
        saving = [
            f
            for f in self.fixes
            if probe in f.saving
            and (f.saving[probe].fraction or 0) >= FIX_SHARE
            and not _worsens_footprint(f)
        ]
        within = [f for f in saving if f.axis != "backend"]
        return max(within or saving, key=lambda f: f.saving[probe].bytes, default=None)


def _worsens_footprint(fix: Fix) -> bool:
    """Whether a fix raises the whole process's resident peak (by any amount it resolves)."""
    whole = fix.footprint.get("resident")
    return whole is not None and whole.bytes is not None and whole.bytes < 0


def ranking_probes(frame: pd.DataFrame) -> tuple[str, ...]:
    """The probes that rank: USS only in a run without rss_anon.

    USS moves by whole library mappings when other processes start or stop (the
    harness's own note), so one step of a job can gain hundreds of MB that no code of
    it allocated; RssAnon counts the same anonymous memory without that. USS figures
    are still shown beside the others.
    """
    if (frame.probe == probes.ANON).any():
        return tuple(p for p in probes.ranking() if p != probes.USS)
    return probes.ranking()


def _measured(tables: Tables) -> dict[tuple[str, str], dict]:
    """(consumer key, operation) -> its consumer, and per probe its selector and table."""
    found: dict[tuple[str, str], dict] = {}
    for consumer in CONSUMERS:
        for operation in consumer.operations(tables.frame):
            for probe, metric in consumer.metrics.items():
                sel = selector(consumer.phase, operation, metric, probe)
                table = tables.per_config(sel)
                # A probe blind to a backend reads a part of its memory: not a figure to rank.
                seen = ~table.backend.map(lambda b, p=probe: p in fixes.blind_probes(b))
                table = table[table.value.notna() & seen.astype(bool)]
                if table.empty or (table.resolved.all() and table.value.max() <= 0):
                    continue  # kept where a figure is below resolution, to show it so
                entry = found.setdefault((consumer.key, operation), {"consumer": consumer})
                entry.setdefault("tables", {})[probe] = table
                entry.setdefault("selectors", {})[probe] = sel
    return found


def _ranks(found: dict, ranking: tuple[str, ...]) -> dict[tuple[str, str], dict[str, int]]:
    """Ranks within each probe: the only place figures are ordered against each other."""
    ranks: dict[tuple[str, str], dict[str, int]] = {key: {} for key in found}
    for probe in ranking:
        worst = sorted(
            ((resolved(e["tables"][probe]).value.max(), key) for key, e in found.items()
             if probe in e["tables"] and (resolved(e["tables"][probe]).value > 0).any()),
            reverse=True,
        )  # fmt: skip
        ranked = [(v, key) for v, key in worst if v >= RANK_SHARE * worst[0][0]]
        for position, (_, key) in enumerate(ranked, start=1):
            ranks[key][probe] = position
    return ranks


def resolved(table: pd.DataFrame) -> pd.DataFrame:
    """The figures at or above their probe's resolution: the only ones compared."""
    return table[table.resolved.astype(bool)]


def _worst(table: pd.DataFrame, configs: pd.DataFrame | None = None) -> pd.Series:
    """The largest resolved positive figure's row; where there is none, the largest figure
    (unresolved, or a resolved fall: memory released is no holding to rank).

    Figures within their probe's resolution of the largest, of the same problem under
    other remedies, are the same figure: of those, the configuration with the most
    measured one-axis variants in ``configs`` (the base a sweep's fixes were measured
    from) is the worst, not the one a few bytes ahead (lean's
    agents under glibc's own allocator, 76.9 MB like its base's: a variant whose setting
    does not act on them)."""
    held = resolved(table)
    held = held[held.value > 0]
    chosen = held if len(held) else table
    if configs is not None and len(held) > 1:
        margin = held.resolution.fillna(0) if "resolution" in held else 0
        tied = held[held.value >= held.value.max() - margin]
        # Ties are the same problem (grid, agents, world…) under another remedy only.
        tied = slice_of(tied, tied.loc[tied.value.idxmax()], REMEDIES)
        if len(tied) > 1:
            by_id = configs.set_index("config_id", drop=False)
            variants = [len(fixes.neighbours(configs, by_id.loc[c])) for c in tied.config_id]
            ranked = tied.assign(variants=variants)
            ranked = ranked.sort_values(["variants", "value"], ascending=False, kind="stable")
            return chosen.loc[ranked.index[0]]
    return chosen.loc[chosen.value.idxmax()]


def _where(table: pd.DataFrame, worst: float) -> dict[str, list]:
    """The values of each axis where the hotspot holds at least ``WHERE_SHARE`` of its
    worst figure; the worlds too, where the figures hold several."""
    matters = table[table.value >= WHERE_SHARE * worst]
    axes = (*WHERE_AXES, WORLD) if several_worlds(table) else WHERE_AXES
    return {axis: sorted(matters[axis].unique().tolist()) for axis in axes}


def _hotspot(tables, plan, key, entry, ranks, ranking) -> Hotspot:
    best = min(ranks.values())
    probe = next(p for p in ranking if ranks.get(p) == best)
    worst = {p: _worst(t, tables.configs) for p, t in entry["tables"].items()}
    base = worst[probe]  # resolved: the ranking probe ranked it
    table = resolved(entry["tables"][probe])
    hotspot = Hotspot(
        consumer=entry["consumer"],
        operation=key[1],
        rank=best,
        ranks=ranks,
        probe=probe,
        worst=worst,
        selectors=entry["selectors"],
        where=_where(table, base.value),
        fits={p: scaling(resolved(t), base) for p, t in entry["tables"].items()},
        fit_configs=sorted(slice_of(table, base, ("grid", "agents")).config_id),
    )
    near = fixes.neighbours(tables.configs, base)
    near = near[near["axis"].isin(entry["consumer"].fix_axes)] if len(near) else near
    for _, variant in near.iterrows():
        hotspot.fixes.append(fixes.fix(tables, entry["selectors"], base, variant))
    hotspot.unavailable = fixes.unavailable(plan, base, tables.configs)
    return hotspot


def rank(
    frame: pd.DataFrame, plan: pd.DataFrame | None = None, resolution: Resolution | None = None
) -> list[Hotspot]:
    """Every consumer with a positive figure at or above its probe's ``resolution``
    (probe -> bytes; none given: every figure counts), best rank first, with its fixes."""
    tables = Tables(frame, resolution)
    found = _measured(tables)
    ranking = ranking_probes(frame)
    ranks = _ranks(found, ranking)
    hotspots = [
        _hotspot(tables, plan, key, entry, ranks[key], ranking)
        for key, entry in found.items()
        if ranks[key]
    ]
    order = {p: i for i, p in enumerate(probes.ranking())}
    # Equal ranks: first the hotspot more probes agree on, then by the probe order.
    hotspots.sort(
        key=lambda h: (h.rank, -sum(r == h.rank for r in h.ranks.values()), order[h.probe])
    )
    return hotspots
