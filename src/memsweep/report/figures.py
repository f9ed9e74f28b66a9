"""The report's figures (matplotlib, Agg backend, PNG), one function each.

Every panel shows one probe: figures of different probes never share an axis.
Captions say what to look at; the Snakemake report's captions
(``workflow/report/<name>.rst``) repeat them, and a test keeps the two equal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from memsweep.report import hotspots
from memsweep.report.hotspots import per_config, selector

CAPTIONS = {
    "memory_vs_grid": "Peak memory above the post-import baseline against the number of "
    "states N (log-log, one agent): the legend gives each line's fitted exponent in N; a "
    "steeper line is a storage or dtype whose memory grows faster with the grid.",
    "memory_vs_agents": "Memory each agent adds, against the number of agents, private "
    "against shared models (largest grid): a flat private line far above the shared one "
    "is the per-agent copy of the model.",
    "precision_vs_memory": "Each configuration's belief error against the float64 "
    "reference versus its resident memory (largest grid and agent count): points on the "
    "stepped line are the Pareto front, no other variant is both smaller and as precise.",
    "step_time_vs_grid": "Median wall time of one step (every operation, one agent) against "
    "N (log-log): what each storage, dtype and backend costs in time as the grid grows.",
    "memory_over_steps": "Memory after each step of the first repeat, relative to the first "
    "step (largest grid and agent count, private models): a rising line is growth over "
    "steps; a flat one means the steady state holds no new memory.",
    "predicted_vs_measured": "The plan's predicted memory against the measured import plus "
    "peak of each job (MB): points below the diagonal were under-predicted.",
}
FIGURES = tuple(CAPTIONS)
PEAK_PROBES = ("vmhwm", "tracemalloc")
# The per-step level rows of each probe (growth phase); rss_anon where the harness has it.
LEVEL_PROBES = {"tracemalloc": "traced_bytes", "rss_anon": "anon_bytes",
                "psutil_uss": "resident_bytes"}  # fmt: skip


def _measured_probes(frame: pd.DataFrame, phase: str, metric_of) -> list[str]:
    """The probes of LEVEL_PROBES that measured ``phase`` in this table (one panel each)."""
    chosen = frame[(frame.phase == phase) & (frame.status == "ok")]
    return [
        probe for probe in LEVEL_PROBES
        if ((chosen.probe == probe) & (chosen.metric == metric_of(probe))).any()
    ] or ["tracemalloc"]  # fmt: skip


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a cluster node or in CI
    import matplotlib.pyplot as plt

    return plt


def _palette(table: pd.DataFrame) -> dict[tuple, object]:
    """One colour per backend/storage/dtype, the same in every panel (tab20: 20 colours)."""
    plt = _pyplot()
    keys = sorted({tuple(k) for k in table[["backend", "storage", "dtype"]].to_numpy()})
    return {key: plt.cm.tab20(i % 20) for i, key in enumerate(keys)}


def _label(row) -> str:
    return f"{row['backend']} {row['storage']} {row['dtype']}"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _empty(ax, text="no measurements"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def _lines_vs_states(ax, table: pd.DataFrame, scale: float) -> None:
    if table.empty:
        _empty(ax)
        return
    colours = _palette(table)
    for key, group in table.groupby(["backend", "storage", "dtype"]):
        group = group.sort_values("states")
        fit = hotspots.fit_exponent(group, "states")
        exponent = f" (N^{fit.exponent:.2f})" if fit else ""
        ax.plot(group.states, group.value * scale, "o-", color=colours[key],
                label=_label(group.iloc[0]) + exponent)  # fmt: skip
    ax.set_yscale("log")
    _measured_ticks(ax, table.states)
    ax.set_xlabel("states N")
    ax.legend(fontsize=7)


def _measured_ticks(ax, values) -> None:
    """A log x axis labelled at the measured values only (default minor labels collide)."""
    from matplotlib.ticker import NullFormatter, NullLocator

    ax.set_xscale("log")
    ticks = sorted(set(values.tolist()))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _one_agent(table: pd.DataFrame) -> pd.DataFrame:
    """One agent, one sharing mode (shared where measured): one line per storage and dtype."""
    table = table[(table.agents == table.agents.min()) & (table.value > 0)]
    preferred = "shared" if (table.sharing == "shared").any() else "private"
    return table[table.sharing == preferred]


def memory_vs_grid(frame: pd.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(PEAK_PROBES), figsize=(11, 4.2))
    for ax, probe in zip(axes, PEAK_PROBES, strict=True):
        table = _one_agent(per_config(frame, selector("summary", "all", "peak_bytes", probe)))
        _lines_vs_states(ax, table, 1e-6)
        ax.set_ylabel(f"peak above baseline (MB) [{probe}]")
        ax.set_title(f"peak_bytes [{probe}]")
    return _save(fig, path)


def memory_vs_agents(frame: pd.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    probes = _measured_probes(frame, "build", lambda probe: "per_agent_bytes")
    fig, axes = plt.subplots(1, len(probes), figsize=(5.5 * len(probes), 4.2), squeeze=False)
    for ax, probe in zip(axes[0], probes, strict=True):
        table = per_config(frame, selector("build", "agents", "per_agent_bytes", probe))
        table = table[table.grid == table.grid.max()] if not table.empty else table
        if table.empty:
            _empty(ax)
            continue
        colours = _palette(table)
        for key, group in table.groupby(["backend", "storage", "dtype", "sharing"]):
            group = group.sort_values("agents")
            style = "o-" if key[3] == "private" else "s--"
            ax.plot(group.agents, group.value / 1e6, style, color=colours[key[:3]],
                    label=" ".join(key))  # fmt: skip
        _measured_ticks(ax, table.agents)
        ax.set_xlabel("agents")
        ax.set_ylabel(f"bytes per agent (MB) [{probe}]")
        ax.set_title(f"per_agent_bytes [{probe}], grid {table.grid.max()}")
        ax.legend(fontsize=6)
    return _save(fig, path)


def pareto(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points no other point beats in both ``x`` and ``y`` (smaller is better in both)."""
    ordered = points.sort_values([x, y])
    front, best = [], np.inf
    for index, row in ordered.iterrows():
        if row[y] < best:
            front.append(index)
            best = row[y]
    return ordered.loc[front]


def precision_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Largest grid and agent count: resident footprint and belief error per configuration."""
    error = per_config(frame, selector("precision", "step", "max_abs_qs_error", "reference_trace"))
    memory = hotspots.footprint(frame, "resident").rename(columns={"value": "memory"})
    points = error.merge(memory, on="config_id")
    if points.empty:
        return points
    points = points[(points.grid == points.grid.max()) & (points.agents == points.agents.max())]
    return points[points.value.notna() & points.memory.notna()]


def precision_vs_memory(frame: pd.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    points = precision_points(frame)
    if points.empty:
        _empty(ax)
        return _save(fig, path)
    # An exact match (error 0) has no logarithm: it is drawn at a floor below every
    # non-zero error and the axis says so.
    positive = points.value[points.value > 0]
    floor = positive.min() / 10 if not positive.empty else 1e-16
    shown = points.assign(error=points.value.clip(lower=floor), mb=points.memory / 1e6)
    colours = _palette(shown)
    for key, group in shown.groupby(["backend", "storage", "dtype"]):
        for sharing, marker in (("private", "o"), ("shared", "s")):
            part = group[group.sharing == sharing]
            if not part.empty:
                ax.scatter(part.mb, part.error, marker=marker, color=colours[key],
                           label=" ".join((*key, sharing)))  # fmt: skip
    front = pareto(shown, "mb", "error")
    ax.step(front.mb, front.error, where="post", color="black", linewidth=1)
    ax.scatter(front.mb, front.error, s=120, facecolors="none", edgecolors="black",
               label="Pareto front")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.axhline(floor, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel(f"import + peak (MB) [{hotspots.footprint_text('resident')}]", fontsize=7)
    ax.set_ylabel(f"max |q(s) − q_ref(s)| (dotted line: exactly 0, drawn at {floor:.1e})")
    ax.legend(fontsize=6, loc="best")
    return _save(fig, path)


def step_time_vs_grid(frame: pd.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    table = _one_agent(
        per_config(frame, selector("summary", "all", "step_seconds", "perf_counter"))
    )
    _lines_vs_states(ax, table, 1e3)
    ax.set_ylabel("median step time (ms) [perf_counter]")
    return _save(fig, path)


def memory_over_steps(frame: pd.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    probes = _measured_probes(frame, "growth", LEVEL_PROBES.get)
    fig, axes = plt.subplots(1, len(probes), figsize=(5.5 * len(probes), 4.2), squeeze=False)
    chosen = frame[(frame.phase == "growth") & (frame.status == "ok") & (frame.step >= 0)]
    if not chosen.empty:
        chosen = chosen[(chosen.grid == chosen.grid.max()) & (chosen.agents == chosen.agents.max())]
        private = chosen[chosen.sharing == "private"]
        chosen = private if not private.empty else chosen
    for ax, probe in zip(axes[0], probes, strict=True):
        metric = LEVEL_PROBES[probe]
        rows = (
            chosen[(chosen.metric == metric) & (chosen.probe == probe)] if len(chosen) else chosen
        )
        if rows.empty:
            _empty(ax)
            continue
        colours = _palette(rows)
        for _, group in rows.groupby("config_id"):
            group = group.sort_values("step")
            relative = (group.value - group.value.iloc[0]) / 1e6
            key = tuple(group.iloc[0][["backend", "storage", "dtype"]])
            ax.plot(group.step, relative, color=colours[key], label=_label(group.iloc[0]))
        ax.set_xlabel("step (first repeat)")
        ax.set_ylabel(f"{metric} − first step (MB) [{probe}]")
        ax.set_title(f"growth {metric} [{probe}]")
        ax.legend(fontsize=6)
    return _save(fig, path)


def predicted_vs_measured(prediction: pd.DataFrame, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    if prediction.empty:
        _empty(ax)
        return _save(fig, path)
    for backend, group in prediction.groupby("backend"):
        ax.scatter(group.predicted_mb, group.measured_mb, label=backend, s=14)
    top = max(prediction.predicted_mb.max(), prediction.measured_mb.max()) * 1.05
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="measured = predicted")
    ax.set_xlabel("predicted MB (plan)")
    ax.set_ylabel("measured MB: import [psutil_uss] + peak [vmhwm]")
    ax.legend(fontsize=7)
    return _save(fig, path)


def write_all(frame: pd.DataFrame, prediction: pd.DataFrame, folder) -> dict[str, Path]:
    """Every figure into ``folder``; returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    makers = {
        "memory_vs_grid": lambda p: memory_vs_grid(frame, p),
        "memory_vs_agents": lambda p: memory_vs_agents(frame, p),
        "precision_vs_memory": lambda p: precision_vs_memory(frame, p),
        "step_time_vs_grid": lambda p: step_time_vs_grid(frame, p),
        "memory_over_steps": lambda p: memory_over_steps(frame, p),
        "predicted_vs_measured": lambda p: predicted_vs_measured(prediction, p),
    }
    return {name: makers[name](folder / f"{name}.png") for name in FIGURES}
