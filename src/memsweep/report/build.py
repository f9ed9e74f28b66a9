"""The hotspot report: results/measurements.parquet (+ plan, calibration) -> Markdown,
HTML and figures.

The report is built once as a list of sections (text, key-value lists, tables,
figures); :func:`markdown` and :mod:`memsweep.report.page` render the same sections, so
the two files never say different things. Every figure in them is computed here
from the tables; nothing is typed by hand.
"""

from __future__ import annotations

import datetime
import html as html_module
import math
import os
import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from memsweep import __version__
from memsweep.report import claims, figures, hotspots
from memsweep.report.hotspots import FIX_AXES, Fit, Hotspot, config_label, selector_text
from memsweep.results.aggregate import failures_table

TOP = 5  # hotspots described in full; the ranking table lists every one


# The section model -------------------------------------------------------------------


@dataclass
class Table:
    """A table: raw values (for sorting) and a formatter per column (for display)."""

    frame: pd.DataFrame
    formats: dict = field(default_factory=dict)

    def shown(self) -> pd.DataFrame:
        out = self.frame.copy()
        for column in out.columns:
            formatter = self.formats.get(column, _plain)
            out[column] = [formatter(v) for v in out[column]]
        return out


@dataclass
class Section:
    title: str
    level: int = 2
    blocks: list = field(default_factory=list)  # (kind, content): text|items|table|figure

    def text(self, text: str) -> Section:
        self.blocks.append(("text", text))
        return self

    def items(self, items: list[tuple[str, str]]) -> Section:
        self.blocks.append(("items", items))
        return self

    def table(self, table: Table) -> Section:
        self.blocks.append(("table", table))
        return self

    def figure(self, name: str, path: Path, caption: str) -> Section:
        self.blocks.append(("figure", (name, Path(path), caption)))
        return self


# Formatting ------------------------------------------------------------------------


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _plain(value) -> str:
    if _missing(value):
        return "—"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def fmt_bytes(value) -> str:
    """Decimal units, three significant figures; a negative figure keeps its sign."""
    if _missing(value):
        return "—"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g} B"


def fmt_percent(value) -> str:
    return "—" if _missing(value) else f"{100 * value:.1f} %"


def fmt_seconds(value) -> str:
    if _missing(value):
        return "—"
    return f"{value * 1e3:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"


def fmt_fit(fit: Fit | None) -> str:
    return "not fitted" if fit is None else fit.text()


def _reading(fit: Fit | None, axis: str) -> str:
    """The nearest whole exponent the fit cannot tell apart from its estimate, in words."""
    if fit is None:
        return f"not fitted in {axis} (fewer than two measured values)"
    if not math.isnan(fit.low) and fit.high - fit.low > 1:
        return f"scaling in {axis} not determined (the 95 % CI is wider than 1)"
    whole = round(fit.exponent)
    within = (
        fit.low <= whole <= fit.high
        if not math.isnan(fit.low)
        else abs(fit.exponent - whole) < 0.25
    )
    if not within:
        return f"∝ {axis}^{fit.exponent:.2f}"
    words = {
        ("N", 0): "does not grow with N",
        ("N", 1): "linear in N (vectors, sparse storage)",
        ("N", 2): "∝ N² (an N×N array or temporary)",
        ("agents", 0): "does not grow with the number of agents",
        ("agents", 1): "∝ agents (each agent holds its own)",
    }
    return words.get((axis, whole), f"∝ {axis}^{whole}")


# Sections --------------------------------------------------------------------------


def _per_agent(h: Hotspot, value: float) -> str:
    agents = int(h.base["agents"])
    if not h.consumer.per_agent or agents <= 1:
        return ""
    return f", {fmt_bytes(value / agents)} per agent"


def _fix_items(h: Hotspot) -> list[tuple[str, str]]:
    fix = h.fix
    if fix is None:
        return [
            (
                "Fix",
                f"no measured one-axis variant saves ≥ {hotspots.FIX_SHARE:.0%} under {h.probe}",
            )
        ]
    parts = []
    for probe, s in fix.saving.items():
        if s.bytes is None:
            parts.append(f"{probe}: {s.note or 'not measured in both configurations'}")
            continue
        per = (
            f", {fmt_bytes(s.bytes / fix.agents)} per agent"
            if h.consumer.per_agent and fix.agents > 1
            else ""
        )
        note = f" ({s.note})" if s.note else ""
        parts.append(f"{probe}: {fmt_bytes(s.bytes)} ({fmt_percent(s.fraction)}){per}{note}")
    whole = [
        f"{family} footprint ({hotspots.footprint_text(family)}): "
        + (f"{fmt_bytes(s.bytes)} ({fmt_percent(s.fraction)})" if s.bytes is not None
           else s.note or "not measured in both configurations")
        for family, s in fix.footprint.items()
    ]  # fmt: skip
    precision = [
        f"{metric} {_plain(base)} → {_plain(variant)}"
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


def hotspot_section(h: Hotspot, position: int, frame: pd.DataFrame) -> Section:
    base = h.base
    section = Section(f"{position}. {h.what}", level=3)
    sizes = [
        f"{probe}: {fmt_bytes(row.value)}{_per_agent(h, row.value)} in {row.config_id} "
        f"({config_label(row)}), median of {int(row.rows)} rows, rank {h.ranks.get(probe, '—')}"
        for probe, row in h.worst.items()
    ]
    where = "; ".join(f"{axis}: {', '.join(map(str, values))}" for axis, values in h.where.items())
    fits = h.fits[h.probe]
    scaling = (
        f"N^{fmt_fit(fits['states'])}, agents^{fmt_fit(fits['agents'])} "
        f"[{h.probe}, {len(h.fit_configs)} configurations with the worst one's "
        f"{', '.join(f'{a}={base[a]}' for a in FIX_AXES)}]: "
        f"{_reading(fits['states'], 'N')}; {_reading(fits['agents'], 'agents')}"
    )
    evidence = "; ".join(f"rows {selector_text(sel)}" for sel in h.selectors.values())
    holds = f"{h.what} ({h.consumer.kind}, operation {h.operation})"
    if h.consumer.key in ("model_built", "agents"):
        arrays = hotspots.model_arrays(frame, base.config_id)
        if arrays:
            holds += "; the model's arrays in that configuration [nbytes]: " + ", ".join(
                f"{name} {fmt_bytes(size)}" for name, size in arrays.items()
            )
    items = [
        ("What holds it", holds),
        ("Measured (worst configuration per probe)", "; ".join(sizes)),
        (f"Where it appears (≥ {hotspots.WHERE_SHARE:.0%} of the worst, {h.probe})", where),
        ("Scaling (log-log least squares, 95 % CI)", scaling),
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
    section.items(items)
    if h.fixes:
        section.table(variants_table(h))
    return section


def _growth_shape(frame: pd.DataFrame, h: Hotspot) -> str:
    """Steady growth or one jump? The per-step levels behind the slope say which."""
    metric = figures.LEVEL_PROBES.get(h.probe)
    levels = hotspots.rows(frame, hotspots.selector("growth", "step", metric, h.probe))
    levels = levels[levels.config_id == h.base.config_id].sort_values("step")
    if len(levels) < 3:
        return "fewer than three per-step levels"
    # The slope leaves out the first step (one-off caches); so does this.
    values = levels.value.to_numpy()[1:]
    net, jumps = values[-1] - values[0], np.diff(values)
    largest = jumps[np.argmax(np.abs(jumps))]
    text = (
        f"{h.probe} levels of {h.base.config_id}, steps {int(levels.step.iloc[1])}–"
        f"{int(levels.step.iloc[-1])}: net {fmt_bytes(net)}, largest single step "
        f"{fmt_bytes(largest)}"
    )
    if net and abs(largest) > 0.5 * abs(net):
        text += "; one step holds most of it: a jump, not steady growth, so the "
        text += "per-100-steps slope extrapolates that jump"
    return text


def variants_table(h: Hotspot) -> Table:
    rows = []
    for fix in h.fixes:
        row = {"change": fix.label(), "variant": fix.variant}
        for probe, s in fix.saving.items():
            row[f"saving [{probe}]"] = s.bytes
            row[f"saving % [{probe}]"] = s.fraction
        for family, s in fix.footprint.items():
            row[f"{family} footprint saving %"] = s.fraction
        row["max_abs_qs_error"] = fix.precision["max_abs_qs_error"][1]
        row["action_agreement"] = fix.precision["action_agreement"][1]
        before, after = fix.step_seconds
        row["step time ×"] = after / before if before and after else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    formats = {c: fmt_bytes for c in frame if c.startswith("saving [")}
    formats |= {c: fmt_percent for c in frame if "%" in c}
    return Table(frame, formats)


def ranking_table(ranked: list[Hotspot]) -> Table:
    rows = []
    for position, h in enumerate(ranked, start=1):
        fix = h.fix
        row = {
            "#": position,
            "hotspot": h.what,
            "kind": h.consumer.kind,
            "ranks": ", ".join(f"{p} {r}" for p, r in h.ranks.items()),
        }
        for probe in hotspots.PROBES:
            row[f"worst [{probe}]"] = h.worst[probe].value if probe in h.worst else None
        row["worst config"] = h.base.config_id
        row["N exponent"] = fmt_fit(h.fits[h.probe]["states"])
        row["agents exponent"] = fmt_fit(h.fits[h.probe]["agents"])
        row["fix"] = fix.label() if fix else "—"
        row["fix saves %"] = fix.saving[h.probe].fraction if fix else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    formats = {c: fmt_bytes for c in frame if c.startswith("worst [")}
    formats["fix saves %"] = fmt_percent
    return Table(frame, formats)


def claims_table(rows: list[claims.Row]) -> Table:
    frame = claims.table(rows)[
        ["claim", "text", "claimed", "ours", "unit", "probe", "configuration", "spread",
         "rule", "verdict", "why", "quantity"]
    ]  # fmt: skip
    return Table(frame, {"ours": lambda v: "—" if _missing(v) else f"{v:.4g}"})


def prediction_sections(prediction: pd.DataFrame, figure: Path) -> Section:
    section = Section("Predicted against measured memory")
    section.text(
        "The plan predicts each job's peak resident memory (sweep.predict_mb). The "
        "comparable measured quantity is what the job added to its interpreter: the "
        f"import plus the peak above the post-import baseline "
        f"({hotspots.footprint_text('resident')}). It leaves out the interpreter's own "
        "pages before the import, which the prediction's import term holds; the second "
        "comparison therefore sets the import aside on both sides: the prediction less its "
        "import term against the measured VmHWM peak above the post-import baseline."
    )
    if prediction.empty:
        return section.text("No measured job to compare.")
    under = prediction[prediction.predicted_mb < prediction.measured_mb]
    above = prediction.above_import_error.dropna()
    section.items(
        [
            ("Jobs compared", str(len(prediction))),
            ("Median |error|, whole job", fmt_percent(prediction.error.abs().median())),
            ("Median error, whole job (signed)", fmt_percent(prediction.error.median())),
            (
                "Sum predicted / sum measured",
                f"{prediction.predicted_mb.sum():.1f} MB / {prediction.measured_mb.sum():.1f} MB",
            ),
            ("Jobs under-predicted (a scheduler would ask for too little)", str(len(under))),
            (
                "Median |error| above the import",
                fmt_percent(above.abs().median()) if len(above) else "—",
            ),
        ]  # fmt: skip
    )
    section.figure("predicted_vs_measured", figure, figures.CAPTIONS["predicted_vs_measured"])
    mb = lambda v: "—" if _missing(v) else f"{v:.1f}"  # noqa: E731
    formats = {c: mb for c in prediction if c.endswith("_mb")}
    formats |= {"error": fmt_percent, "above_import_error": fmt_percent}
    return section.table(Table(prediction.reset_index(drop=True), formats))


def failure_section(frame: pd.DataFrame, plan: pd.DataFrame) -> Section:
    section = Section("Configurations not measured")
    table = failures_table(frame, plan, [])
    if table.empty:
        return section.text("Every planned configuration was measured.")
    grouped = (
        table.groupby(["status", "backend", "reason"], dropna=False)
        .agg(configurations=("config_id", "size"), examples=("config_id", _examples))
        .reset_index()
    )
    section.text(
        "Planned out (unsupported by the backend, over the memory budget) or failed while "
        "running, with the reason the plan or the supervisor gave."
    )
    section.table(Table(grouped))
    failed = table[table.status == "failed"]
    if not failed.empty:
        section.text("Failed jobs, one by one:")
        section.table(Table(failed.reset_index(drop=True)))
    return section


def _examples(ids) -> str:
    ids = list(ids)
    return ", ".join(ids[:3]) + (f" (+{len(ids) - 3})" if len(ids) > 3 else "")


def provenance_section(frame: pd.DataFrame) -> Section:
    section = Section("Provenance")
    items = []
    for column in ("memsweep_version", "pymdp_version", "numpy_version", "scipy_version",
                   "jax_version", "python_version", "platform", "hostname"):  # fmt: skip
        if column in frame:
            values = sorted(frame[column].dropna().astype(str).unique())
            items.append((f"measured with {column}", ", ".join(values) or "—"))
    if "started_at" in frame and frame.started_at.notna().any():
        items.append(("measured between", f"{frame.started_at.min()} and {frame.started_at.max()}"))
    import matplotlib

    items += [
        ("report made at", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")),
        ("report made on", f"{socket.gethostname()} ({platform.platform()})"),
        ("report made with", f"memsweep {__version__}, python {platform.python_version()}, "
                             f"pandas {pd.__version__}, matplotlib {matplotlib.__version__}"),
    ]  # fmt: skip
    return section.items(items)


def build(frame, plan, calibration, figure_dir) -> tuple[str, list[Section]]:
    """The report's title and sections; writes the figures into ``figure_dir``."""
    ranked = hotspots.rank(frame, plan)
    prediction = hotspots.prediction_table(frame, plan) if not plan.empty else pd.DataFrame()
    paths = figures.write_all(frame, prediction, figure_dir)
    ok = frame[frame.status == "ok"]
    measured, planned = ok.config_id.nunique(), len(plan)
    title = "Memory hotspots of PyMDP agents"
    intro = Section("Summary")
    intro.text(
        f"{measured} configurations measured of {planned} planned "
        f"({(plan.status != 'run').sum() if len(plan) else 0} planned out, "
        f"{frame[frame.status == 'failed'].config_id.nunique()} failed), "
        f"{len(frame)} measurement rows. Backends: "
        f"{', '.join(sorted(ok.backend.unique()))}."
    )
    intro.text(
        "How to read it. Each probe ranks the consumers on its own and figures of "
        "different probes are never compared: tracemalloc counts numpy and Python "
        "allocations exactly but cannot see XLA's buffers (pymdp-jax); VmHWM, RssAnon and "
        "USS count the process's resident pages, but a temporary that reuses pages already "
        "resident adds nothing to them, and USS also moves when other processes map or "
        "unmap the same libraries; nbytes is the exact size of the model's arrays. "
        f"Ranking probes in this run: {', '.join(hotspots.ranking_probes(frame))}. A hotspot's "
        "rank is its best rank under any probe (ties: the one more probes rank there "
        "first). A consumer ranks under a probe only if its worst figure is at least "
        f"{hotspots.RANK_SHARE:.0%} of that probe's largest. Figures are medians over "
        "steps and repeats of one configuration; 'worst' is the configuration where the "
        "median is largest. A fix is a measured configuration one axis away "
        f"({', '.join(FIX_AXES)}) from the worst one; its savings compare the two "
        "configurations under one probe. A saving above 100 % means the variant's figure "
        "is negative: it released memory that the worst configuration kept."
    )
    intro.items(
        [
            (
                f"#{i}",
                f"{h.what} — {fmt_bytes(h.base.value)} [{h.probe}] in {h.base.config_id}"
                + (
                    f"; fix {h.fix.label()} saves {fmt_percent(h.fix.saving[h.probe].fraction)}"
                    if h.fix
                    else ""
                ),
            )
            for i, h in enumerate(ranked[:TOP], start=1)
        ]  # fmt: skip
    )
    sections = [intro]
    ranking = Section("Hotspots ranked by measured bytes")
    ranking.text(
        "One row per hotspot: its worst figure under each probe that measured it, its "
        "rank under each probe, its scaling and its best one-axis fix."
    )
    sections.append(ranking.table(ranking_table(ranked)))
    sections.append(Section(f"The top {min(TOP, len(ranked))} hotspots in detail"))
    sections += [hotspot_section(h, i, frame) for i, h in enumerate(ranked[:TOP], start=1)]

    seed = Section("Seed study claims")
    seed.text(
        "Every quantitative claim of the hand-made seed study beside our figure for the "
        "closest comparable configuration (claims, selections and tolerance rules: "
        "memsweep/report/data/seed_claims.yaml). 'spread' is our figure over every qualifying "
        "configuration."
    )
    sections.append(seed.table(claims_table(claims.evaluate(frame))))

    scaling = Section("Scaling")
    scaling.text(
        "Exponents of log-log least-squares fits, per backend, storage, dtype and sharing; "
        "in N with one intercept per agent count, in agents with one per grid; 95 % "
        "confidence intervals from the t distribution. Values ≤ 0 have no logarithm and "
        "are left out (column nonpositive)."
    )
    for name in ("memory_vs_grid", "memory_vs_agents", "step_time_vs_grid"):
        scaling.figure(name, paths[name], figures.CAPTIONS[name])
    sections.append(scaling.table(Table(hotspots.scaling_table(frame))))

    sections.append(prediction_sections(prediction, paths["predicted_vs_measured"]))

    pareto = Section("Precision against memory")
    pareto.figure("precision_vs_memory", paths["precision_vs_memory"],
                  figures.CAPTIONS["precision_vs_memory"])  # fmt: skip
    points = figures.precision_points(frame)
    if not points.empty:
        front = figures.pareto(points, "memory", "value")
        front = front[["config_id", *FIX_AXES, "grid", "agents", "memory", "value"]].rename(
            columns={"memory": "import + peak", "value": "max_abs_qs_error"}
        )
        pareto.text("The Pareto front: no other configuration is both smaller and as precise.")
        pareto.table(Table(front.reset_index(drop=True), {"import + peak": fmt_bytes}))
    sections.append(pareto)

    growth = Section("Memory over steps")
    sections.append(
        growth.figure(
            "memory_over_steps", paths["memory_over_steps"], figures.CAPTIONS["memory_over_steps"]
        )  # fmt: skip
    )
    sections.append(failure_section(frame, plan))
    calibration_section = Section("Probe calibration on this machine")
    calibration_section.text(
        "Each probe against allocations of known size (numpy arrays, every page written)."
    )
    sections.append(
        calibration_section.table(
            Table(
                calibration,
                {
                    "error_fraction": fmt_percent,
                    "measured_bytes": fmt_bytes,
                    "requested_bytes": fmt_bytes,
                },
            )  # fmt: skip
        )
    )
    sections.append(provenance_section(frame))
    return title, sections


# Markdown ---------------------------------------------------------------------------


def _md_text(value) -> str:
    # Markdown passes raw HTML through: a reason holding markup must show as text.
    return html_module.escape(str(value), quote=False)


def _md_cell(value) -> str:
    # A pipe ends a Markdown table cell and a newline ends the row.
    return _md_text(value).replace("|", "\\|").replace("\n", " ")


def markdown(title: str, sections: list[Section], figure_base: str = "figures") -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += ["#" * section.level + " " + section.title, ""]
        for kind, content in section.blocks:
            if kind == "text":
                lines += [_md_text(content), ""]
            elif kind == "items":
                lines += [f"- **{_md_text(k)}**: {_md_text(v)}" for k, v in content] + [""]
            elif kind == "table":
                shown = content.shown().map(_md_cell)
                shown.columns = [_md_cell(c) for c in shown.columns]
                lines += [shown.to_markdown(index=False, disable_numparse=True), ""]
            elif kind == "figure":
                name, path, caption = content
                lines += [f"![{name}]({figure_base}/{path.name})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def write(measurements, plan, calibration, out_markdown, out_html=None, figure_dir=None) -> None:
    """Read the tables, build the report, write Markdown (and HTML) and the figures."""
    from memsweep.report import page as html

    frame = pd.read_parquet(measurements)
    plan_frame = pd.read_parquet(plan)
    calibration_frame = pd.read_parquet(calibration)
    out_markdown = Path(out_markdown)
    figure_dir = Path(figure_dir) if figure_dir else out_markdown.parent / "figures"
    title, sections = build(frame, plan_frame, calibration_frame, figure_dir)
    out_markdown.parent.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(figure_dir.resolve(), out_markdown.parent.resolve())
    out_markdown.write_text(markdown(title, sections, Path(relative).as_posix()))
    if out_html:
        Path(out_html).write_text(html.render(title, sections))
    print(f"report: {out_markdown}, {out_html}, {len(list(figure_dir.glob('*.png')))} figures")
