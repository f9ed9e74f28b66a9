"""The report's sections, in order: one short function each, all reading one context.

A section function takes the :class:`Context` (the tables, the ranked hotspots, the
figures' paths) and returns a :class:`~memsweep.report.document.Section`; the
report is :data:`SECTIONS` in order. A new section is one function and one entry
there; its prose goes in :mod:`memsweep.report.text`.
"""

from __future__ import annotations

import datetime
import platform
import socket
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from memsweep import __version__
from memsweep.harness import calibration as calibrated
from memsweep.harness import probes
from memsweep.report import (
    breakdown,
    capacity,
    changes,
    claims,
    figures,
    firstscreen,
    hotspots,
    text,
    versions,
)
from memsweep.report import predictor as fitting
from memsweep.report.consumers import CONSUMERS
from memsweep.report.detail import hotspot_section
from memsweep.report.document import Section, Table
from memsweep.report.fits import fit_text, scaling_table
from memsweep.report.formats import fmt_bytes, fmt_mb, fmt_number, fmt_percent
from memsweep.report.needed import label
from memsweep.report.pareto import pareto, precision_points
from memsweep.report.queries import (
    FIX_AXES,
    WORLD,
    Tables,
    figure,
    footprint_text,
    mark,
    several_worlds,
    shown_axes,
    with_world,
)
from memsweep.results.aggregate import failures_table

PROVENANCE = ("memsweep_version", "pymdp_version", "numpy_version", "scipy_version",
              "jax_version", "python_version", "platform", "hostname")  # fmt: skip


@dataclass
class Context:
    """What every section may read: the tables, the ranked hotspots, the figures."""

    frame: pd.DataFrame
    plan: pd.DataFrame
    calibration: pd.DataFrame
    ranked: list[hotspots.Hotspot]
    prediction: pd.DataFrame
    figures: dict[str, Path]
    failures: pd.DataFrame | None = None  # the aggregate's table, with unreadable files
    profiles: pd.DataFrame | None = None  # the deep profiles' rows, with their flame graphs
    comparison: str | None = None  # memsweep compare's page the config asked for, relative

    def figure(self, section: Section, name: str) -> Section:
        return section.figure(name, self.figures[name], figures.caption(name, self.frame))

    @cached_property
    def resolution(self) -> dict[str, float]:
        """Each calibrated probe's resolution (bytes), from the calibration table."""
        return calibrated.resolution(self.calibration)

    @cached_property
    def tables(self) -> Tables:
        return Tables(self.frame, self.resolution)

    @cached_property
    def predictor(self) -> dict:
        """The memory predictor fitted to the frame, with its leave-one-grid-out table:
        fitted once for the sections that show either."""
        return fitting.predictor(self.frame)

    @cached_property
    def remedies(self) -> list[changes.Remedies]:
        """Per backend: its largest configuration and the one-axis changes from it."""
        return changes.every_backend(self.tables)


def _sees() -> str:
    shown = (*probes.ranking(), probes.EXACT)
    return " ".join(text.PROBE_SEES.format(name=p, sees=probes.REGISTRY[p].sees) for p in shown)


def _top_item(h: hotspots.Hotspot, world: bool = False) -> str:
    """One of the top hotspots in words (``world``: name its configuration's world, for a
    sweep of several)."""
    item = text.TOP_ITEM.format(
        what=h.what,
        value=fmt_bytes(h.base.value),
        probe=h.probe,
        rank=h.ranks[h.probe],
        label=label(h.base, world=world),
        config_id=h.base.config_id,
    )
    if h.fix:
        item += text.TOP_FIX.format(
            fix=h.fix.label(), share=fmt_percent(h.fix.saving[h.probe].fraction)
        )
        whole = h.fix.footprint.get("resident")
        if whole is not None and whole.fraction is not None:
            item += text.TOP_FIX_WHOLE.format(whole=fmt_percent(whole.fraction))
    return item


def glance(c: Context) -> Section:
    return firstscreen.glance(c.remedies, c.tables.configs)


def glance_sources(c: Context) -> Section:
    return firstscreen.glance_sources(c.remedies)


def memory_needed(c: Context) -> Section:
    return firstscreen.needed(c.tables)


def where_it_goes(c: Context) -> Section:
    return breakdown.section(c.tables, lambda section: c.figure(section, "memory_breakdown"))


def user_changes(c: Context) -> Section:
    return firstscreen.changes(c.remedies, c.tables.configs, c.plan)


def summary(c: Context) -> Section:
    frame, plan = c.frame, c.plan
    ok = frame[frame.status == "ok"]
    section = Section("Summary").text(
        text.SUMMARY.format(
            measured=ok.config_id.nunique(),
            planned=len(plan),
            planned_out=(plan.status != "run").sum() if len(plan) else 0,
            failed=frame[frame.status == "failed"].config_id.nunique(),
            rows=len(frame),
            backends=", ".join(sorted(ok.backend.unique())),
        )
    )
    top = enumerate(c.ranked[: text.TOP], start=1)
    several = several_worlds(c.tables.configs)
    section.items([(f"#{i}", _top_item(h, several)) for i, h in top])
    if c.comparison:
        section.link(text.COMPARISON_LINK, c.comparison)
    return section


def _ranking_row(probe: str, h: hotspots.Hotspot, world: bool = False) -> dict:
    fix, worst = h.fix_under(probe), h.worst[probe]
    fits = h.fits.get(probe, {})
    return {
        "#": h.ranks[probe],
        "hotspot": h.what,
        "kind": h.consumer.kind,
        f"worst [{probe}]": figure(worst),
        "worst configuration": f"{label(worst, world=world)} ({worst.config_id})",
        "N exponent": fit_text(fits.get("states")),
        "agents exponent": fit_text(fits.get("agents")),
        "fix": fix.label() if fix else "—",
        f"fix saves % [{probe}]": fix.saving[probe].fraction if fix else None,
    }


def _ranked_under(c: Context, probe: str) -> Section:
    """The hotspots one probe ranks, by that probe's worst figure only."""
    ranked = sorted((h for h in c.ranked if probe in h.ranks), key=lambda h: h.ranks[probe])
    section = Section(text.RANKED_UNDER.format(probe=probe), level=3)
    if not ranked:
        return section.text(text.NOT_RANKED.format(probe=probe))
    several = several_worlds(c.tables.configs)
    frame = pd.DataFrame([_ranking_row(probe, h, several) for h in ranked])
    formats = {f"worst [{probe}]": fmt_bytes, f"fix saves % [{probe}]": fmt_percent}
    return section.text(text.PROBE_SEES.format(name=probe, sees=probes.REGISTRY[probe].sees)).table(
        Table(frame, formats)
    )


def _overview(c: Context) -> Table:
    """Every hotspot with its worst figure under each probe, side by side: rows in the
    catalogue's order (the consumers, then their operations), never ordered by a figure."""
    order = {consumer.key: i for i, consumer in enumerate(CONSUMERS)}
    listed = sorted(c.ranked, key=lambda h: (order[h.consumer.key], h.operation))
    ranking = hotspots.ranking_probes(c.frame)  # USS only where nothing better measured
    rows = [
        {
            "hotspot": h.what,
            "kind": h.consumer.kind,
            "ranks": ", ".join(f"{p} {r}" for p, r in h.ranks.items()),
            **{f"worst [{p}]": figure(h.worst[p]) if p in h.worst else None for p in ranking},
        }
        for h in listed
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    return Table(frame, {column: fmt_bytes for column in frame if column.startswith("worst [")})


def ranking(c: Context) -> Section:
    section = Section("Hotspots ranked by measured bytes").text(text.RANKING)
    section.text(text.RANKING_OVERVIEW).table(_overview(c))
    section.subsections = [_ranked_under(c, p) for p in hotspots.ranking_probes(c.frame)]
    return section


def top_hotspots(c: Context) -> Section:
    section = Section(text.TOP_TITLE.format(count=min(text.TOP, len(c.ranked))))
    section.subsections = [
        hotspot_section(h, i, c.frame) for i, h in enumerate(c.ranked[: text.TOP], start=1)
    ]
    return section


def _sites(rows: pd.DataFrame, metric: str, probe: str) -> pd.DataFrame:
    """One row per site: its bytes and allocations under ``probe``, the largest first."""
    chosen = rows[(rows.probe == probe) & rows.site.notna()]
    if chosen.empty:
        return pd.DataFrame()
    table = chosen.pivot_table(index="site", columns="metric", values="value", aggfunc="sum")
    table = table.sort_values(f"{metric}_bytes", ascending=False).reset_index()
    names = {f"{metric}_bytes": f"bytes [{probe}]", f"{metric}_count": f"allocations [{probe}]"}
    return table.rename(columns=names)


def _profile(c: Context, rows: pd.DataFrame) -> Section:
    first = rows.iloc[0]
    title = text.PROFILE_TITLE.format(label=label(first), config_id=first.config_id)
    section = Section(title, level=3)
    if (rows.status == "failed").any():
        return section.text(text.PROFILE_FAILED.format(reason=rows.reason.dropna().iloc[0]))
    section.link(text.FLAMEGRAPH_LINK, first.flamegraph)
    whole = rows[rows.site.isna()].set_index("metric").value
    section.items([
        (f"heap at its high-water mark [{probes.MEMRAY}]", fmt_bytes(whole["peak_bytes"])),
        ("share of it the flame graph draws", fmt_percent(whole["flamegraph_fraction"])),
    ])  # fmt: skip
    alive = _sites(rows, "alive", probes.MEMRAY)
    section.text(text.PROFILE_SITES).table(Table(alive, {f"bytes [{probes.MEMRAY}]": fmt_bytes}))
    built = c.frame[(c.frame.config_id == first.config_id) & (c.frame.phase == "build")]
    for operation in ("agents", "model"):
        kept = _sites(built[built.operation == operation], "site", probes.TRACEMALLOC)
        if not kept.empty:
            section.text(text.BUILD_SITES.format(operation=operation))
            section.table(Table(kept, {f"bytes [{probes.TRACEMALLOC}]": fmt_bytes}))
    return section


def deep_profiles(c: Context) -> Section:
    section = Section(text.PROFILES_TITLE).text(
        text.PROFILES.format(sees=probes.REGISTRY[probes.MEMRAY].sees)
    )
    if c.profiles is None or c.profiles.empty:
        return section.text(text.NO_PROFILES)
    ordered = c.profiles.sort_values("backend", kind="stable")
    for _, rows in ordered.groupby("config_id", sort=False):
        section.subsections.append(_profile(c, rows))
    return section


def seed_claims(c: Context) -> Section:
    columns = ["claim", "reading", "claimed", "ours", "unit", "probe", "basis",
               "configuration", "spread", "rule", "verdict", "why"]  # fmt: skip
    evaluated = claims.evaluate(c.frame, resolution=c.resolution)
    final = claims.verdicts(evaluated)
    section = Section("Seed study claims").text(text.SEED_CLAIMS).table(Table(final))
    if (final.verdict == claims.NOT_COMPARABLE).all():
        return section.text(text.NO_CLAIM_COMPARABLE)
    detail = Table(claims.table(evaluated)[columns], {"ours": fmt_number})
    return section.text(text.SEED_CLAIM_ROWS).table(detail)


def scaling(c: Context) -> Section:
    section = Section("Scaling").text(text.SCALING)
    for name in ("memory_vs_grid", "memory_vs_agents", "step_time_vs_grid"):
        c.figure(section, name)
    return section.table(Table(scaling_table(c.frame, c.resolution)))


def prediction(c: Context) -> Section:
    table = c.prediction
    section = Section("Predicted against measured memory")
    section.text(text.PREDICTION.format(footprint=footprint_text("resident")))
    if table.empty:
        return section.text(text.NO_PREDICTION)
    above = table.above_import_error.dropna()
    both = table[table.measured_mb.notna()]  # a footprint below resolution is left out
    section.items([
        ("Jobs compared", str(len(table))),
        ("Median |error|, whole job", fmt_percent(table.error.abs().median())),
        ("Median error, whole job (signed)", fmt_percent(table.error.median())),
        ("Sum predicted / sum measured",
         f"{both.predicted_mb.sum():.1f} MB / {both.measured_mb.sum():.1f} MB"),
        ("Jobs under-predicted (a scheduler would ask for too little)",
         str((table.predicted_mb < table.measured_mb).sum())),
        ("Median |error| above the import",
         fmt_percent(above.abs().median()) if len(above) else "—"),
    ])  # fmt: skip
    c.figure(section, "predicted_vs_measured")
    formats = {column: fmt_mb for column in table if column.endswith("_mb")}
    formats |= {"error": fmt_percent, "above_import_error": fmt_percent}
    section.subsections.append(fitted_predictor(c))
    return section.table(Table(table.reset_index(drop=True), formats))


def fitted_predictor(c: Context) -> Section:
    section = Section("The fitted predictor, leave one grid out", level=3)
    section.text(text.FITTED_PREDICTOR)
    table = pd.DataFrame(c.predictor["leave_one_grid_out"])
    if table.empty:
        return section.text(text.NO_PREDICTION)
    formats = {"median_abs_error": fmt_percent, "worst_under_prediction": fmt_percent}
    section.table(Table(table, formats))
    fits = capacity.capacity(c.frame, c.resolution, c.predictor)
    if not fits.empty:
        section.text(text.CAPACITY).table(Table(fits))
    return section


def precision(c: Context) -> Section:
    section = c.figure(Section("Precision against memory"), "precision_vs_memory")
    points = precision_points(c.frame, c.resolution)
    if points.empty:
        return section
    # One front per world: the precision and memory of two worlds' models are no trade-off.
    front = pd.concat(
        [pareto(own, "memory", "value") for _, own in points.groupby(WORLD, sort=False)]
    )
    shown = shown_axes(points)
    front = front[["config_id", *shown, "grid", "agents", "memory", "value"]].rename(
        columns={"memory": "import + peak", "value": "max_abs_qs_error"}
    )
    table = Table(front.reset_index(drop=True), {"import + peak": fmt_bytes})
    return section.text(text.PARETO).table(table)


def growth(c: Context) -> Section:
    section = c.figure(Section("Memory over steps"), "memory_over_steps")
    steady = steady_growth(c.frame, c.resolution)
    if steady.empty:
        return section
    formats = {column: fmt_bytes for column in steady if column.endswith("]")}
    return section.text(text.STEADY_GROWTH).table(Table(steady, formats))


def steady_growth(frame: pd.DataFrame, resolution: dict | None = None) -> pd.DataFrame:
    """Per configuration of the largest grid and agent count (of each world), each level
    probe's one-off jumps and its steady growth after the last jump (the rows of
    harness/jumps.py), a figure below its probe's ``resolution`` as the marker; USS, which
    other processes move, is left out."""
    wanted = frame.metric.str.contains("_jump_bytes|_steady_growth_", regex=True)
    rows = frame[(frame.phase == "growth") & (frame.status == "ok") & wanted]
    rows = rows[rows.probe != probes.USS]
    if rows.empty:
        return pd.DataFrame()
    rows = with_world(rows)
    per_world = rows.groupby(WORLD)
    largest = (rows.grid == per_world.grid.transform("max")) & (
        rows.agents == per_world.agents.transform("max")
    )
    rows = mark(rows[largest], resolution)
    rows = rows.assign(shown=[figure(row) for _, row in rows.iterrows()])
    table = rows.pivot(index="config_id", columns=["metric", "probe"], values="shown")
    table.columns = [f"{metric} [{probe}]" for metric, probe in table.columns]
    configs = rows.drop_duplicates("config_id").set_index("config_id")
    several = several_worlds(configs)
    table.insert(0, "configuration", [label(configs.loc[c], world=several) for c in table.index])
    return table.sort_values("configuration").reset_index(drop=True)


def across_versions(c: Context) -> Section | None:
    """Only where the sweep ran more than one PyMDP release (None: left out)."""
    return versions.across_versions(c.frame, c.resolution)


def _examples(ids) -> str:
    ids = list(ids)
    return ", ".join(ids[:3]) + (f" (+{len(ids) - 3})" if len(ids) > 3 else "")


def failures(c: Context) -> Section:
    section = Section("Configurations not measured")
    table = c.failures if c.failures is not None else failures_table(c.frame, c.plan, [])
    if table.empty:
        return section.text(text.ALL_MEASURED)
    grouped = (
        table.groupby(["status", "backend", "reason"], dropna=False)
        .agg(configurations=("config_id", "size"), examples=("config_id", _examples))
        .reset_index()
    )
    section.text(text.FAILURES).table(Table(grouped))
    failed = table[table.status.isin(("failed", "invalid"))].dropna(axis="columns", how="all")
    if not failed.empty:
        section.text(text.FAILED_ONE_BY_ONE).table(Table(failed.reset_index(drop=True)))
    return section


def calibration(c: Context) -> Section:
    formats = {"error_fraction": fmt_percent, "measured_bytes": fmt_bytes,
               "requested_bytes": fmt_bytes, "spread_bytes": fmt_bytes,
               "resolution_bytes": calibrated.size_text}  # fmt: skip
    section = Section("Probe calibration on this machine").text(
        text.CALIBRATION.format(tolerance=calibrated.TOLERANCE)
    )
    if c.resolution:
        section.items([(probe, calibrated.size_text(size)) for probe, size in c.resolution.items()])
    return section.table(Table(c.calibration, formats))


def appendix(c: Context) -> Section:
    return Section(text.APPENDIX_TITLE).text(
        text.HOW_TO_READ.format(
            sees=_sees(),
            ranking=", ".join(hotspots.ranking_probes(c.frame)),
            rank_share=hotspots.RANK_SHARE,
            fix_axes=", ".join(FIX_AXES),
        )
    )


def provenance(c: Context) -> Section:
    import matplotlib

    frame = c.frame
    items = [
        (f"measured with {column}", ", ".join(sorted(frame[column].dropna().astype(str).unique()))
         or "—")
        for column in PROVENANCE if column in frame
    ]  # fmt: skip
    if "started_at" in frame and frame.started_at.notna().any():
        items.append(("measured between", f"{frame.started_at.min()} and {frame.started_at.max()}"))
    items += [
        ("report made at", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")),
        ("report made on", f"{socket.gethostname()} ({platform.platform()})"),
        ("report made with", f"memsweep {__version__}, python {platform.python_version()}, "
                             f"pandas {pd.__version__}, matplotlib {matplotlib.__version__}"),
    ]  # fmt: skip
    return Section("Provenance").items(items)


SECTIONS = (
    glance,
    memory_needed,
    where_it_goes,
    user_changes,
    summary,
    ranking,
    top_hotspots,
    deep_profiles,
    scaling,
    prediction,
    precision,
    growth,
    across_versions,
    seed_claims,
    failures,
    calibration,
    provenance,
    glance_sources,
    appendix,
)
