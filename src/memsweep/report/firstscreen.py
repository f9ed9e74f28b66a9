"""The report's first screen and its fixes: a few sentences per backend, the memory
each configuration needs, and the changes a user would make.

The sentences are computed from :mod:`memsweep.report.changes` (one backend's largest
configuration, its biggest part under one probe, its one-axis changes) and
:mod:`memsweep.report.needed` (the parts of every configuration); the words are in
:mod:`memsweep.report.text`.
"""

from __future__ import annotations

import pandas as pd

from memsweep.harness import probes
from memsweep.report import text
from memsweep.report.changes import (
    AXES,
    COSTS_MORE,
    MODEL,
    NO_SAVING,
    NOT_COMPUTED,
    SAVES,
    SECONDS,
    Change,
    Remedies,
    precision_cost,
)
from memsweep.report.document import Section, Table, anchor
from memsweep.report.fixes import unavailable
from memsweep.report.formats import fmt_bytes, fmt_percent, plain
from memsweep.report.hotspots import FIX_SHARE
from memsweep.report.needed import TOTAL, agents_text, label, needed_table, several_policies
from memsweep.report.queries import selector, selector_text, several_worlds


def change_label(c: Change, capital: bool = False) -> str:
    words = text.CHANGE_WORDS.get((c.axis, c.new)) or text.CHANGE_WORDS.get((c.axis, None))
    words = (words or "{axis} {new}").format(axis=c.axis, new=c.new)
    shown = text.CHANGE_LABEL.format(words=words, axis=c.axis, old=c.old, new=c.new)
    return shown[0].upper() + shown[1:] if capital else shown


def _precision(c: Change) -> str:
    cost = precision_cost(c)
    if cost is None:
        return text.PRECISION_UNKNOWN
    if not cost:
        return text.NO_PRECISION_COST
    costs = ", ".join(f"{m} {plain(b)} → {plain(v)}" for m, (b, v) in cost.items())
    return text.PRECISION_COST.format(costs=costs)


def _part_saving(c: Change) -> str:
    """The biggest part's saving under its probe, where the change acts on it."""
    if c.part is None or c.part.bytes is None:
        return ""
    return text.GLANCE_FIX_PART.format(saved=fmt_bytes(c.part.bytes), probe=c.part.probe)


def _time(c: Change) -> str:
    ratio = c.time_ratio
    return text.TIME_COST.format(ratio=ratio) if ratio else ""


def _part(r: Remedies) -> str:
    part, base = r.part, r.base
    if part is None:
        return text.GLANCE_NO_PART.format(probe=r.probe)
    agents = int(base["agents"])
    words = text.PART_WORDS.get(part.key, part.key).format(
        agents=agents_text(agents), operation=part.operation
    )
    detail = ""
    if part.key == "agents" and agents > 1:
        each = fmt_bytes(part.value / agents)
        model = r.model_bytes
        private = base["sharing"] == "private" and model
        detail = (text.AGENTS_PRIVATE if private else text.AGENTS_EACH).format(
            each=each, model=fmt_bytes(model)
        )
    return text.GLANCE_PART.format(
        probe=r.probe, part=words, value=fmt_bytes(part.value), detail=detail
    )


def futile(c: Change, base_total: float) -> str:
    """A change that does not pay, in words, with both footprints."""
    figures = {"variant": fmt_bytes(c.whole.variant), "base": fmt_bytes(base_total)}
    if c.verdict == COSTS_MORE:
        more = fmt_bytes(-c.whole.bytes)
        return text.FUTILE_MORE.format(change=change_label(c), more=more, **figures)
    return text.FUTILE_NONE.format(change=change_label(c), **figures)


def sentences(r: Remedies, policy: bool = False) -> str:
    """Two or three sentences on one backend, from its largest configuration."""
    base = r.base
    said = [
        text.GLANCE_PEAK.format(
            backend=r.title,
            grid=base["grid"],
            agents=f"{int(base['agents'])} {base['sharing']} agent"
            + ("s" if int(base["agents"]) != 1 else ""),
            storage=base["storage"],
            dtype=base["dtype"],
            policy=f", policy_len {base['policy_len']}" if policy else "",
            total=fmt_bytes(r.total),
        ),
        _part(r),
    ]
    best = r.best
    if best is not None:
        said.append(
            text.GLANCE_FIX.format(
                change=change_label(best, capital=True),
                saved=fmt_bytes(best.whole.bytes),
                share=fmt_percent(best.whole.fraction),
                part=_part_saving(best),
                precision=_precision(best),
                time=_time(best),
            )
        )
    elif r.changes:
        said.append(text.GLANCE_NO_FIX.format(backend=r.title, share=FIX_SHARE))
    else:
        said.append(text.GLANCE_NO_VARIANT.format(backend=r.title))
    if r.futile:
        listed = "; ".join(futile(c, r.total) for c in r.futile)
        said.append(text.GLANCE_FUTILE.format(backend=r.title, changes=listed))
    return " ".join(said)


def _rows(sel: dict, *config_ids: str) -> str:
    """A filter of results/measurements.parquet that gives a figure's rows."""
    ids = " or ".join(f"config_id={config_id}" for config_id in config_ids)
    return f"{selector_text(sel)} {ids}"


def sources(r: Remedies) -> list[tuple[str, str]]:
    """Every number of :func:`sentences`, each with the rows it is read from (a peak: the
    maximum of its rows; a part of several agents: its per-agent row × agents)."""
    base = r.base["config_id"]
    found = [(fmt_bytes(r.total), _rows(TOTAL.sel, base))]
    if r.part is not None:
        times = f" × {int(r.base['agents'])}" if r.part.sel["metric"] == "per_agent_bytes" else ""
        found.append((fmt_bytes(r.part.value), _rows(r.part.sel, base) + times))
        if r.part.key == "agents" and r.model_bytes:
            found.append((fmt_bytes(r.model_bytes), _rows(MODEL, base)))
    best = r.best
    changed = [best] if best is not None else []
    for c in [*changed, *r.futile]:
        variant = c.variant["config_id"]
        words = change_label(c)
        found.append((f"{words}: {fmt_bytes(c.whole.variant)}", _rows(TOTAL.sel, variant)))
        if c is best:
            if c.part is not None and c.part.bytes is not None and r.part is not None:
                found.append((f"{words}: its part", _rows(r.part.sel, base, variant)))
            for metric in precision_cost(c) or {}:
                sel = selector("precision", "step", metric, probes.REFERENCE)
                found.append((f"{words}: {metric}", _rows(sel, base, variant)))
            if c.time_ratio:
                found.append((f"{words}: step time", _rows(SECONDS, base, variant)))
    return found


def glance(found: list[Remedies], configs: pd.DataFrame) -> Section:
    section = Section(text.GLANCE_TITLE)
    if not found:
        return section.text(text.GLANCE_NONE)
    policy = several_policies(configs)
    for r in found:
        section.text(sentences(r, policy))
    return section.link(text.GLANCE_SOURCES_LINK, "#" + anchor(text.GLANCE_SOURCES_TITLE))


def glance_sources(found: list[Remedies]) -> Section:
    """Where each number of the first screen comes from (near the end: a reader checks
    them, but should not have to read past them)."""
    section = Section(text.GLANCE_SOURCES_TITLE).text(text.GLANCE_SOURCES)
    for r in found:
        section.items([(f"{r.title}: {number}", rows) for number, rows in sources(r)])
    return section


def needed(tables) -> Section:
    table = needed_table(tables)
    formats = {column: fmt_bytes for column in table if column.endswith("]")}
    return Section(text.NEEDED_TITLE).text(text.NEEDED).table(Table(table, formats))


def verdict(c: Change) -> str:
    if c.verdict == SAVES:
        return f"saves {fmt_bytes(c.whole.bytes)}"
    if c.verdict == COSTS_MORE:
        return f"costs {fmt_bytes(-c.whole.bytes)} more"
    if c.verdict == NO_SAVING:
        return f"no saving ({c.why})"
    return f"{NOT_COMPUTED}: {c.why}"


def _both(pair) -> str:
    before, after = pair
    return f"{plain(before)} → {plain(after)}"


def _saving_cell(saving) -> object:
    if saving is None:
        return "does not act on it"
    return saving.bytes if saving.bytes is not None else saving.note


def changes_table(r: Remedies, changes: list[Change], part: bool = True) -> Table:
    rank = {SAVES: 0, NO_SAVING: 1, COSTS_MORE: 2, NOT_COMPUTED: 3}
    ordered = sorted(changes, key=lambda c: (rank[c.verdict], -(c.whole.bytes or 0)))
    out = []
    for c in ordered:
        row = {
            "change": change_label(c),
            "variant": c.variant["config_id"],
            TOTAL.header: c.whole.variant,
            f"saving, {TOTAL.header}": c.whole.bytes if c.whole.bytes is not None else c.whole.note,
            "saving %": c.whole.fraction if c.verdict != NOT_COMPUTED else None,
            "verdict": verdict(c),
        }
        if part and r.part is not None:
            row[f"saving, biggest part [{r.probe}]"] = _saving_cell(c.part)
        row |= {metric: _both(pair) for metric, pair in c.precision.items()}
        row["step time ×"] = c.time_ratio
        out.append(row)
    frame = pd.DataFrame(out)
    formats = {column: fmt_bytes for column in frame if column.endswith("]")}
    return Table(frame, formats | {"saving %": fmt_percent})


def not_run(r: Remedies, plan: pd.DataFrame | None) -> str:
    """The one-axis variants within the backend that the plan did not run, and why."""
    missing = sorted(
        {(a, v, why) for a, v, why in unavailable(plan, r.base, r.measured) if a != "backend"}
    )
    listed = "; ".join(f"{axis} {value}: {why}" for axis, value, why in missing)
    return text.CHANGES_NOT_RUN.format(listed=listed) if missing else ""


def backend_changes(r: Remedies, policy: bool, plan: pd.DataFrame | None = None) -> Section:
    section = Section(r.title, level=3)
    part = r.part
    several = r.measured is not None and several_worlds(r.measured)
    section.text(
        text.CHANGES_BASE.format(
            label=label(r.base, policy, several),
            config_id=r.base["config_id"],
            total=fmt_bytes(r.total),
            probe=r.probe,
            part=part.key if part else "—",
            value=fmt_bytes(part.value) if part else "—",
        )
    )
    missing = not_run(r, plan)
    if not r.changes:
        section.text(text.CHANGES_NONE.format(backend=r.title))
        return section.text(missing) if missing else section
    section.table(changes_table(r, r.changes))
    if missing:
        section.text(missing)
    if r.futile:
        listed = "; ".join(futile(c, r.total) for c in r.futile)
        section.text(text.GLANCE_FUTILE.format(backend=r.title, changes=listed))
    return section


def switching(found: list[Remedies]) -> Section:
    section = Section(text.SWITCH_TITLE, level=3).text(text.SWITCH)
    several = any(r.measured is not None and several_worlds(r.measured) for r in found)
    rows = [
        {"from": f"{label(r.base, world=several)} ({r.base['config_id']})", **row}
        for r in found
        for row in changes_table(r, r.switches, part=False).frame.to_dict("records")
    ]
    if not rows:
        return section.text(text.SWITCH_NONE)
    frame = pd.DataFrame(rows)
    formats = {column: fmt_bytes for column in frame if column.endswith("]")}
    return section.table(Table(frame, formats | {"saving %": fmt_percent}))


def changes(found: list[Remedies], configs: pd.DataFrame, plan=None) -> Section:
    section = Section(text.CHANGES_TITLE).text(
        text.CHANGES.format(axes=", ".join(AXES), share=FIX_SHARE)
    )
    policy = several_policies(configs)
    section.subsections = [backend_changes(r, policy, plan) for r in found]
    section.subsections.append(switching(found))
    return section
