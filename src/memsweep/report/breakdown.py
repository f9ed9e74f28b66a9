"""Where the memory goes: per backend, its base configuration's whole-process peak split
into parts that one probe read and that add up to it.

All parts are by the kernel's peak (``vmhwm``), the probe of the total
(``summary/all/total_peak_bytes``): the resident set at the post-import baseline (the
interpreter, the libraries, the warm-up), building the model and building the agents
(each its window's peak above the window's start), and the rest: what the calls added
above the builds (negative where a build's own temporaries were gone before the peak).
The rest is shown, never hidden. Beside them, not added (they overlap the parts): the
first call's and the steps' per-call peaks, and what the cleanup left, then what
``malloc_trim(0)`` handed back (rss_anon).
"""

from __future__ import annotations

import pandas as pd

from memsweep.report import text
from memsweep.report.document import Section, Table
from memsweep.report.formats import fmt_bytes, fmt_percent
from memsweep.report.needed import TOTAL, bases, heading, label, largest
from memsweep.report.queries import Tables, selector, several_worlds

PROBE = "vmhwm"
PARTS = (
    ("fixed cost", "interpreter, libraries and warm-up, at the baseline",
     selector("summary", "all", "baseline_bytes", PROBE)),
    ("model", "building the model: its window's peak",
     selector("build", "model", "call_peak_bytes", PROBE)),
    ("agents", "building the agents: its window's peak",
     selector("build", "agents", "call_peak_bytes", PROBE)),
)  # fmt: skip
REST = ("the rest", "what the calls added above the builds (negative: a build's temporaries "
        "were gone before the peak)")  # fmt: skip
BESIDE = (
    ("first call", "its peak above the call's start, the largest operation [vmhwm]",
     selector("compile", None, "call_peak_bytes", PROBE)),
    ("per-call temporaries", "the largest step call's peak above its start [vmhwm]",
     selector("step", None, "call_peak_bytes", PROBE)),
    ("left after cleanup", "resident above the baseline once the agents are dropped "
     "[rss_anon]", selector("cleanup", "drop_agents", "retained_bytes", "rss_anon")),
    ("of which the allocator held", "handed back by malloc_trim(0) [rss_anon]",
     selector("cleanup", "malloc_trim", "returned_bytes", "rss_anon")),
)  # fmt: skip


def parts(
    tables: Tables, backend: str, world: str | None = None
) -> tuple[pd.Series, pd.DataFrame] | None:
    """The backend's base configuration in ``world`` (None: its first, see
    :func:`~memsweep.report.needed.largest`) and its parts (``part``, ``what``, ``bytes``,
    ``share`` of the total, ``added``: whether it is one of the parts that sum to it)."""
    base = largest(tables, backend, world)
    total = None if base is None else tables.value(TOTAL.sel, base.config_id)
    if total is None:
        return None

    def row(name, what, sel, added):
        # ``bytes`` as measured (the rest is computed from it); ``shown`` marks a figure
        # below its probe's resolution, which gets no share.
        value, shown = tables.value(sel, base.config_id), tables.figure(sel, base.config_id)
        share = value / total if isinstance(shown, float | int) else None
        return {"part": name, "what": what, "bytes": value, "shown": shown, "share": share,
                "added": added}  # fmt: skip

    rows = [row(name, what, sel, True) for name, what, sel in PARTS]
    known = [r["bytes"] for r in rows if r["bytes"] is not None]
    if len(known) == len(rows):
        rest = total - sum(known)
        rows.append({"part": REST[0], "what": REST[1], "bytes": rest, "shown": rest,
                     "share": rest / total, "added": True})  # fmt: skip
    rows.append(row("total", "the whole process's peak, summary/all/total_peak_bytes [vmhwm]",
                    TOTAL.sel, False))  # fmt: skip
    for name, what, sel in BESIDE:
        if tables.value(sel, base.config_id) is not None:
            rows.append(row(f"beside: {name}", what, sel, False))
    return base, pd.DataFrame(rows)


def section(tables: Tables, figure=None) -> Section:
    """One table per backend (per backend and world, where the sweep measured several);
    ``figure``: a callback that adds the stacked bar."""
    found = Section(text.BREAKDOWN_TITLE).text(text.BREAKDOWN)
    if figure is not None:
        figure(found)
    several = several_worlds(tables.configs)
    for backend, world in bases(tables):
        split = parts(tables, backend, world)
        if split is None:
            continue
        base, table = split
        sub = Section(f"{backend}: {label(base, world=several)}", level=3)
        shown = table[["part", "what", "shown", "share"]].rename(columns={"shown": "bytes"})
        sub.table(Table(shown, {"bytes": fmt_bytes, "share": fmt_percent}))
        found.subsections.append(sub)
    return found


def stacked(tables: Tables) -> pd.DataFrame:
    """Backend × part (MB) of the parts that add up, for the stacked bar: one bar per
    backend and world where the sweep measured several (``pymdp-numpy · tmaze``)."""
    bars = {}
    for backend, world in bases(tables):
        split = parts(tables, backend, world)
        if split is not None:
            added = split[1][split[1].added]
            name = heading(backend, world, tables.configs)
            bars[name] = dict(zip(added.part, added.bytes / 1e6, strict=True))
    return pd.DataFrame(bars).T
