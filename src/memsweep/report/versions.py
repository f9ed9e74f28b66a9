"""Across PyMDP releases: the section a sweep with more than one ``pymdp_version`` gets.

Per backend, each configuration's whole footprint and step time under every release,
side by side, and the figures that regressed from the oldest release to the newest, as
``memsweep compare --axis pymdp_version=OLD,NEW`` judges them
(:mod:`memsweep.results.compare`: beyond the probe's resolution and 5 %; time by a
Mann–Whitney U test and the ratio of medians).
"""

from __future__ import annotations

import pandas as pd

from memsweep.report import queries, text
from memsweep.report.document import Section, Table
from memsweep.report.formats import fmt_bytes, fmt_number
from memsweep.report.queries import selector
from memsweep.results import compare

AXIS = "pymdp_version"
SHOWN = (("total_peak_bytes", "vmhwm", fmt_bytes), ("step_seconds", "perf_counter", fmt_number))


def _release_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def releases(frame: pd.DataFrame) -> list[str]:
    """The releases the rows ran with, oldest first."""
    if AXIS not in frame:
        return []
    return sorted(frame[AXIS].dropna().astype(str).unique(), key=_release_key)


def side_by_side(frame: pd.DataFrame, versions: list[str]) -> pd.DataFrame:
    """One row per configuration (its settings but the release, in words), one column per
    release and figure."""
    keys = [c for c in compare.CONFIG if c in frame]
    wanted = []
    for metric, probe, _ in SHOWN:
        rows = queries.rows(frame, selector("summary", "all", metric, probe))
        table = rows.groupby([*keys, AXIS], dropna=False, observed=True).value.median()
        table = table.unstack(AXIS).reindex(columns=versions)
        table.columns = [f"{metric} [{probe}] {v}" for v in table.columns]
        wanted.append(table)
    joined = pd.concat(wanted, axis=1).reset_index()
    joined.insert(0, "configuration", compare.labels(joined, keys))
    return joined.drop(columns=keys)


def across_versions(frame: pd.DataFrame, resolution: dict | None) -> Section | None:
    """The section, or None where the sweep ran one release only."""
    versions = releases(frame)
    if len(versions) < 2:
        return None
    described = text.VERSIONS.format(releases=", ".join(versions))
    section = Section(text.VERSIONS_TITLE).text(described)
    formats = {}
    for metric, probe, shown in SHOWN:
        formats |= {f"{metric} [{probe}] {v}": shown for v in versions}
    for backend, own in frame.groupby("backend", observed=True):
        table = side_by_side(own, releases(own))
        sub = Section(str(backend), level=3).table(Table(table, formats))
        section.subsections.append(sub)
    oldest, newest = versions[0], versions[-1]
    whole = compare.MeasurementSet("this sweep", frame, None)
    try:
        base, new = compare.split(whole, AXIS, [oldest, newest])
        judged = compare.compare(base, new, AXIS, compare.THRESHOLD, resolution)
    except compare.CompareError as error:
        return section.text(f"{oldest} → {newest}: not compared ({error}).")
    regressed = judged.of(compare.REGRESSED)
    title = f"{oldest} → {newest}: {len(regressed)} figure(s) regressed"
    columns = ["label", "metric", "probe", "base", "new", "ratio", "p_value", "note"]
    found = Section(title, level=3).text(text.VERSIONS_REGRESSED)
    if len(regressed):
        shown = {"base": fmt_number, "new": fmt_number, "ratio": fmt_number}
        found.table(Table(regressed[columns].reset_index(drop=True), shown))
    section.subsections.append(found)
    return section
