"""A comparison as people read it: a short summary for the terminal, a Markdown and an
HTML table, a CSV with every column, and a figure of NEW/BASE per configuration.

Every file is written atomically (``files.atomic``) and one by one, never by swapping
the output folder: ``--out`` may be a folder that holds other things.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from memsweep.files import atomic
from memsweep.results.compare import (
    ERROR_FACTOR,
    IMPROVED,
    ONLY_BASE,
    ONLY_NEW,
    REGRESSED,
    SIGNIFICANCE,
    UNCHANGED,
    Comparison,
)

NAME = "compare"  # compare.md, compare.html, compare.csv, compare.png
SHOWN = 20  # regressions listed on the terminal; all of them are in the files
COLOURS = {IMPROVED: "#1b7837", REGRESSED: "#b2182b", UNCHANGED: "#999999"}
MARKERS = {"memory": "o", "time": "s", "precision": "^"}


def value_text(value: float, unit: str) -> str:
    """A figure in the unit people read: MB, ms, or as measured."""
    if pd.isna(value):
        return "–"
    if unit == "B":
        return f"{value / 1e6:.4g} MB"
    if unit == "s":
        return f"{value * 1e3:.4g} ms"
    return f"{value:.3g}"


def size_text(size: float) -> str:
    if math.isinf(size):
        return "none (off at every calibrated size)"
    return f"{size / 1e6:g} MB" if size >= 1e6 else f"{size / 1e3:g} KB"


def settings_lines(result: Comparison) -> list[str]:
    """What was compared, and by which rules."""
    threshold = f"{100 * result.threshold:g} %"
    if result.resolution is None:
        floor = "none: no calibration.parquet beside either set, so no resolution floor"
    else:
        held = ", ".join(f"{p} {size_text(s)}" for p, s in sorted(result.resolution.items()))
        floor = f"{held} (from {result.resolution_from})"
    return [
        f"BASE: {result.base}",
        f"NEW: {result.new}",
        f"memory: changed beyond the probe's resolution and {threshold} of BASE",
        f"resolution: {floor}",
        f"time: Mann–Whitney U p < {SIGNIFICANCE:g} on the per-step samples and the ratio "
        f"of medians beyond ×{1 + result.threshold:g}",
        "precision: any change in action agreement, or a maximum error moved more than ×10",
    ]


def counts_line(result: Comparison) -> str:
    return " · ".join(f"{verdict} {count}" for verdict, count in result.counts().items())


def by_metric(result: Comparison) -> list[str]:
    """Per metric and probe, how many configurations improved and regressed."""
    judged = result.table.dropna(subset=["metric"])
    if judged.empty:
        return []
    counts = judged.groupby(["kind", "metric", "probe"]).verdict.value_counts().unstack()
    lines = []
    for (kind, metric, probe), row in counts.fillna(0).astype(int).iterrows():
        held = ", ".join(f"{v} {row.get(v, 0)}" for v in (REGRESSED, IMPROVED, UNCHANGED))
        lines.append(f"  {kind} {metric} [{probe}]: {held}")
    return lines


def _row_text(row) -> str:
    if row.verdict in (ONLY_BASE, ONLY_NEW):
        return f"{row.label}: {row.verdict}"
    change = f"{value_text(row.base, row.unit)} → {value_text(row.new, row.unit)}"
    ratio = f" (×{row.ratio:.3g})" if np.isfinite(row.ratio) else ""
    p = f", p = {row.p_value:.2g}" if pd.notna(row.p_value) else ""
    return f"{row.label}: {row.metric} [{row.probe}] {change}{ratio}{p}"


def summary(result: Comparison, written: list[Path] | None = None) -> str:
    """The terminal's account: settings, counts, the regressions, the files."""
    lines = settings_lines(result) + [counts_line(result)] + by_metric(result)
    regressed = result.of(REGRESSED)
    if not regressed.empty:
        lines.append("regressed:")
        lines += [f"  {_row_text(row)}" for row in regressed.head(SHOWN).itertuples()]
        if len(regressed) > SHOWN:
            lines.append(f"  … and {len(regressed) - SHOWN} more (see {NAME}.md)")
    for verdict in (ONLY_BASE, ONLY_NEW):
        for row in result.of(verdict).itertuples():
            lines.append(f"{verdict}: {row.label}")
    if written:
        lines.append("written: " + ", ".join(str(path) for path in written))
    return "\n".join(lines)


def shown_table(result: Comparison) -> pd.DataFrame:
    """The table the Markdown and the HTML show: one row per figure, in readable units."""
    table = result.table
    return pd.DataFrame(
        {
            "verdict": table.verdict,
            "configuration": table.label,
            "metric [probe]": [
                "" if pd.isna(m) else f"{m} [{p}]"
                for m, p in zip(table.metric, table.probe, strict=True)
            ],
            "BASE": [value_text(v, u) for v, u in zip(table.base, table.unit, strict=True)],
            "NEW": [value_text(v, u) for v, u in zip(table.new, table.unit, strict=True)],
            "NEW/BASE": ["–" if not np.isfinite(r) else f"{r:.3g}" for r in table.ratio],
            "p": ["–" if pd.isna(p) else f"{p:.2g}" for p in table.p_value],
            "note": table.note.fillna(""),
        }
    )


def markdown(result: Comparison) -> str:
    lines = ["# Comparison", ""] + [f"- {line}" for line in settings_lines(result)]
    lines += ["", f"**{counts_line(result)}**", "", f"![NEW/BASE]({NAME}.png)", ""]
    lines.append(shown_table(result).to_markdown(index=False, disable_numparse=True))
    return "\n".join(lines) + "\n"


def page(result: Comparison) -> str:
    """Offline HTML: the same table, each row coloured by its verdict."""
    table = shown_table(result)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = []
    for values in table.itertuples(index=False):
        cells = "".join(f"<td>{html.escape(str(v))}</td>" for v in values)
        rows.append(f'<tr class="{html.escape(values[0]).replace(" ", "-")}">{cells}</tr>')
    settings = "".join(f"<li>{html.escape(line)}</li>" for line in settings_lines(result))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>memsweep comparison</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
        ".regressed{background:#fddbc7}.improved{background:#d9f0d3}"
        ".unmeasured,.only-in-BASE,.only-in-NEW{background:#fff7bc}"
        "</style></head><body><h1>Comparison</h1>"
        f"<ul>{settings}</ul><p><b>{html.escape(counts_line(result))}</b></p>"
        f'<img src="{NAME}.png" alt="NEW/BASE per configuration">'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</body></html>\n"
    )


def figure(result: Comparison, path: Path) -> None:
    """NEW/BASE per configuration on a log scale, one marker per figure (its shape the
    kind, its colour the verdict): memory and time on the left, precision on the right,
    whose error ratios (from ~0 to float32's rounding) would squash the others."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a cluster node or in CI
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    table = result.table[np.isfinite(result.table.ratio) & (result.table.ratio > 0)]
    ordered = result.table.sort_values(result.keys, kind="stable").label
    labels = [label for label in pd.unique(ordered)[::-1] if label in set(table.label)]
    height = 1.5 + 0.25 * max(len(labels), 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, height), sharey=True, width_ratios=(2, 1))
    panels = (table[table.kind != "precision"], table[table.kind == "precision"])
    for ax, panel, title in zip(axes, panels, ("memory and time", "precision"), strict=True):
        for (kind, verdict), group in panel.groupby(["kind", "verdict"]):
            ax.scatter(
                group.ratio,
                group.label.map(labels.index),
                marker=MARKERS.get(kind, "x"),
                color=COLOURS.get(verdict, "#e08214"),
                label=f"{kind}, {verdict}",
                alpha=0.8,
            )
        ax.set_xscale("log")
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        if not panel.empty:
            ax.legend(fontsize=7, loc="best")
    for bound in (1 + result.threshold, 1 / (1 + result.threshold)):
        axes[0].axvline(bound, color="grey", linestyle=":", linewidth=0.8)
    # Ratios of memory and time span about a decade: ticks at 1, 2, 5 of each, as numbers.
    axes[0].xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    axes[0].xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_yticks(range(len(labels)), labels, fontsize=7)
    axes[0].set_xlabel("NEW / BASE (log scale; dotted: the threshold)")
    axes[1].set_xlabel(f"NEW / BASE (log scale; a change beyond ×{ERROR_FACTOR:g})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(result: Comparison, out: str | Path) -> list[Path]:
    """compare.{md,html,csv,png} in ``out``, each written atomically."""
    out = Path(out)
    paths = [out / f"{NAME}.{suffix}" for suffix in ("md", "html", "csv", "png")]
    for path, text in zip(paths, (markdown(result), page(result)), strict=False):
        with atomic(path) as temporary:
            temporary.write_text(text)
    with atomic(paths[2]) as temporary:
        result.table.to_csv(temporary, index=False)
    with atomic(paths[3], suffix=".png") as temporary:
        figure(result, temporary)
    return paths
