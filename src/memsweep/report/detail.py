"""One hotspot in detail: what holds it, where, how it scales, its evidence and its fix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from memsweep.plan.jobs import allocator_words
from memsweep.report import text
from memsweep.report.document import Section, Table
from memsweep.report.figures import LEVEL_PROBES
from memsweep.report.fits import fit_text, reading
from memsweep.report.formats import Unresolved, fmt_bytes, fmt_percent, fmt_seconds, plain
from memsweep.report.hotspots import FIX_SHARE, WHERE_SHARE, Hotspot
from memsweep.report.queries import (
    FIX_AXES,
    WORLD,
    config_label,
    figure,
    footprint_text,
    model_array_parts,
    model_arrays,
    names_world,
    rows,
    selector,
    selector_text,
    summarised_by,
    world_of,
)


def _per_agent(h: Hotspot, value: float, agents: int) -> str:
    if not h.consumer.per_agent or agents <= 1:
        return ""
    return f", {fmt_bytes(value / agents)} per agent"


def _measured(h: Hotspot, probe: str, row: pd.Series, agents: int) -> str:
    """One probe's worst figure; below the probe's resolution, ``< N`` and nothing per agent."""
    shown = figure(row)
    if isinstance(shown, Unresolved):
        return f"{probe}: {shown} (below its resolution)"
    return f"{probe}: {fmt_bytes(shown)}{_per_agent(h, shown, agents)}"


def _saving(s, h: Hotspot | None = None, agents: int = 1) -> str:
    """A saving in bytes and share (per agent where the hotspot is per agent), or why not."""
    if s.bytes is None:
        return s.note or text.NOT_IN_BOTH
    per = _per_agent(h, s.bytes, agents) if h else ""
    note = f" ({s.note})" if s.note else ""
    return f"{fmt_bytes(s.bytes)} ({fmt_percent(s.fraction)}){per}{note}"


def _fix_items(h: Hotspot) -> list[tuple[str, str]]:
    fix = h.fix
    if fix is None:
        return [("Fix", text.NO_FIX.format(share=FIX_SHARE, probe=h.probe))]
    parts = [f"{probe}: {_saving(s, h, fix.agents)}" for probe, s in fix.saving.items()]
    whole = [
        f"{family} footprint ({footprint_text(family)}): {_saving(s)}"
        for family, s in fix.footprint.items()
    ]
    precision = [
        f"{metric} {plain(base)} → {plain(variant)}"
        for metric, (base, variant) in fix.precision.items()
    ]
    before, after = fix.step_seconds
    ratio = f" (×{after / before:.2f})" if before and after else ""
    return [
        ("Fix", f"{fix.label()}: configuration {fix.variant}"),
        ("Measured saving, this hotspot", "; ".join(parts)),
        ("Measured saving, whole configuration", "; ".join(whole) or "not measured"),
        ("Precision cost", "; ".join(precision)),
        ("Time cost", f"median step {fmt_seconds(before)} → {fmt_seconds(after)}{ratio}"),
    ]


def _array_parts(parts: dict[str, float] | None) -> str:
    """A world's arrays of one kind, each (``(A[0] 1 MB, A[1] 2 KB)``): what the sum holds."""
    if not parts or len(parts) < 2:
        return ""
    return " (" + ", ".join(f"{name} {fmt_bytes(size)}" for name, size in parts.items()) + ")"


def _holds(h: Hotspot, frame: pd.DataFrame) -> str:
    holds = f"{h.what} ({h.consumer.kind}, operation {h.operation})"
    if h.consumer.key in ("model_built", "agents"):
        arrays = model_arrays(frame, h.base.config_id)
        each = model_array_parts(frame, h.base.config_id)  # a breakdown, never added
        if arrays:
            holds += "; the model's arrays in that configuration [nbytes]: " + ", ".join(
                f"{name} {fmt_bytes(size)}" + _array_parts(each.get(name))
                for name, size in arrays.items()
            )
    return holds


def _scaling(h: Hotspot) -> str:
    fits = h.fits[h.probe]
    return text.SCALING_ITEM.format(
        n=fit_text(fits["states"]),
        agents=fit_text(fits["agents"]),
        probe=h.probe,
        configs=len(h.fit_configs),
        setting=", ".join(
            f"{a}={h.base[a]}" if a != WORLD else f"{a}={world_of(h.base)}"
            for a in (*FIX_AXES, WORLD)
            if a != WORLD or WORLD in h.where or names_world(h.base)
        )
        + "".join(f", {words}" for words in allocator_words(h.base)),
        n_reading=reading(fits["states"], "N"),
        agents_reading=reading(fits["agents"], "agents"),
    )


def _growth_shape(frame: pd.DataFrame, h: Hotspot) -> str:
    """Steady growth or one jump? The per-step levels behind the slope say which."""
    metric = LEVEL_PROBES.get(h.probe)
    levels = rows(frame, selector("growth", "step", metric, h.probe))
    levels = levels[levels.config_id == h.base.config_id].sort_values("step")
    if len(levels) < 3:
        return "fewer than three per-step levels"
    # The slope leaves out the first step (one-off caches); so does this.
    values = levels.value.to_numpy()[1:]
    net, jumps = values[-1] - values[0], np.diff(values)
    largest = jumps[np.argmax(np.abs(jumps))]
    shape = text.GROWTH_SHAPE.format(
        probe=h.probe,
        config_id=h.base.config_id,
        first=int(levels.step.iloc[1]),
        last=int(levels.step.iloc[-1]),
        net=fmt_bytes(net),
        largest=fmt_bytes(largest),
    )
    if net and abs(largest) > 0.5 * abs(net):
        shape += text.GROWTH_JUMP
    return shape


def hotspot_section(h: Hotspot, position: int, frame: pd.DataFrame) -> Section:
    agents = int(h.base["agents"])
    sizes = [
        f"{_measured(h, probe, row, agents)} in {row.config_id} "
        f"({config_label(row, WORLD in h.where)}), "
        f"{summarised_by(h.selectors[probe]['metric'])} of {int(row.rows)} rows, "
        f"rank {h.ranks.get(probe, '—')}"
        for probe, row in h.worst.items()
    ]
    where = "; ".join(f"{axis}: {', '.join(map(str, values))}" for axis, values in h.where.items())
    evidence = "; ".join(f"rows {selector_text(sel)}" for sel in h.selectors.values())
    items = [
        ("What holds it", _holds(h, frame)),
        ("Measured (worst configuration per probe)", "; ".join(sizes)),
        (f"Where it appears (≥ {WHERE_SHARE:.0%} of the worst, {h.probe})", where),
        ("Scaling (log-log least squares, 95 % CI)", _scaling(h)),
        ("Evidence", f"{evidence}; fitted configurations: {', '.join(h.fit_configs)}"),
        *_fix_items(h),
    ]
    if h.consumer.key == "growth":
        items.append(("Shape of the growth", _growth_shape(frame, h)))
    missing = sorted(set(h.unavailable))
    if missing:
        items.append(
            (
                "One-axis variants not measured",
                "; ".join(f"{axis}={value}: {reason}" for axis, value, reason in missing),
            )
        )
    section = Section(f"{position}. {h.what}", level=3).items(items)
    return section.table(variants_table(h)) if h.fixes else section


BELOW = "below resolution"  # a saving not computed: one of its figures is below resolution


def variants_table(h: Hotspot) -> Table:
    """Every measured one-axis variant of the worst configuration, with its savings."""
    out = []
    for fix in h.fixes:
        row = {"change": fix.label(), "variant": fix.variant}
        for probe, s in fix.saving.items():
            row[f"saving [{probe}]"] = BELOW if s.unresolved else s.bytes
            row[f"saving % [{probe}]"] = BELOW if s.unresolved else s.fraction
        for family, s in fix.footprint.items():
            row[f"{family} footprint saving %"] = BELOW if s.unresolved else s.fraction
        row["max_abs_qs_error"] = fix.precision["max_abs_qs_error"][1]
        row["action_agreement"] = fix.precision["action_agreement"][1]
        before, after = fix.step_seconds
        row["step time ×"] = after / before if before and after else None
        out.append(row)
    frame = pd.DataFrame(out)
    formats = {c: fmt_bytes for c in frame if c.startswith("saving [")}
    formats |= {c: fmt_percent for c in frame if "%" in c}
    return Table(frame, formats)
