"""The report's figures (matplotlib, Agg backend, PNG): one registered function each.

``@figure(name, caption=...)`` registers a function that draws one figure into a
path; :func:`write_all` draws every registered figure, the report's sections refer
to them by name, and the Snakemake report's captions (``workflow/report/figures.rst``)
are rendered from the same registry (``python -m memsweep.report.figures --rst``).
Every panel shows one probe: figures of different probes never share an axis.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from memsweep.harness import probes
from memsweep.report.fixes import blind_probes
from memsweep.report.pareto import pareto, precision_points
from memsweep.report.plotting import (
    empty,
    label,
    lines_vs_states,
    measured_ticks,
    palette,
    panels,
    pyplot,
    save,
)
from memsweep.report.queries import footprint_text, per_config, selector

PEAK_PROBES = probes.peaks()
# The per-step level rows of each level probe (growth phase).
LEVEL_PROBES = {p.name: f"{p.level_metric}_bytes" for p in probes.levels()}
RST_COMMAND = "python -m memsweep.report.figures --rst > workflow/report/figures.rst"


@dataclass(frozen=True)
class Figure:
    name: str
    caption: str  # what to look at; shown under the figure in every report
    draw: Callable[[pd.DataFrame, Path], Path]
    source: str  # the table it draws: "frame" (the measurements) or "prediction"
    # The caption's words for the sweep at hand (phrase -> its replacement), where the
    # generic caption names a setting the sweep may lack ("private models").
    words: Callable[[pd.DataFrame], dict[str, str]] | None = None


REGISTRY: dict[str, Figure] = {}


def figure(name: str, caption: str, source: str = "frame", words=None):
    """Register the decorated ``draw(table, path) -> path`` as the figure ``name``."""

    def register(draw):
        if name in REGISTRY:
            raise ValueError(f"figure {name!r} is registered twice")
        REGISTRY[name] = Figure(name, caption, draw, source, words)
        return draw

    return register


def caption(name: str, frame: pd.DataFrame | None = None) -> str:
    """The figure's caption; given the measurements, in the words of that sweep."""
    entry = REGISTRY[name]
    shown = entry.caption
    if frame is not None and entry.words is not None:
        for phrase, replacement in entry.words(frame).items():
            shown = shown.replace(phrase, replacement)
    return shown


def _modes(sharing: pd.Series) -> str:
    return " and ".join(sorted(map(str, sharing.dropna().unique()))) or "no"


def _measured_probes(frame: pd.DataFrame, phase: str, metric_of) -> list[str]:
    """The probes of LEVEL_PROBES that measured ``phase`` in this table (one panel each)."""
    chosen = frame[(frame.phase == phase) & (frame.status == "ok")]
    return [
        probe for probe in LEVEL_PROBES
        if ((chosen.probe == probe) & (chosen.metric == metric_of(probe))).any()
    ] or [probes.TRACEMALLOC]  # fmt: skip


def _one_agent(table: pd.DataFrame) -> pd.DataFrame:
    """One agent, one sharing mode (shared where measured): one line per storage and dtype."""
    table = table[(table.agents == table.agents.min()) & (table.value > 0)]
    preferred = "shared" if (table.sharing == "shared").any() else "private"
    return table[table.sharing == preferred]


def _seen_by(table: pd.DataFrame, probe: str) -> pd.DataFrame:
    """The rows of backends ``probe`` can see: a blind probe's reading of a backend (JAX's
    arrays under tracemalloc) is no figure of its memory, and draws no line."""
    return table[[probe not in blind_probes(backend) for backend in table.backend]]


def _probe_panels(path: Path, probes_here, table_of, draw) -> Path:
    """One panel per probe: ``draw(ax, probe, table)`` with the table ``table_of(probe)``,
    less the backends the probe is blind to."""
    fig, axes = panels(len(probes_here))
    for ax, probe in zip(axes[0], probes_here, strict=True):
        table = _seen_by(table_of(probe), probe)
        if table.empty:
            empty(ax)
            continue
        draw(ax, probe, table)
    return save(fig, path)


@figure(
    "memory_vs_grid",
    caption="Peak memory above the post-import baseline against the number of states N "
    "(log-log, one agent): the legend gives each line's fitted exponent in N; a steeper line "
    "is a storage or dtype whose memory grows faster with the grid.",
)
def memory_vs_grid(frame: pd.DataFrame, path: Path) -> Path:
    def draw(ax, probe, table):
        lines_vs_states(ax, table, 1e-6)
        ax.set_ylabel(f"peak above baseline (MB) [{probe}]")
        ax.set_title(f"peak_bytes [{probe}]")

    def table_of(probe):
        return _one_agent(per_config(frame, selector("summary", "all", "peak_bytes", probe)))

    return _probe_panels(path, PEAK_PROBES, table_of, draw)


def _agents_words(frame: pd.DataFrame) -> dict[str, str]:
    """A sweep of one sharing mode has no private line against a shared one."""
    chosen = frame[(frame.phase == "build") & (frame.status == "ok")]
    chosen = chosen[chosen.grid == chosen.grid.max()] if not chosen.empty else chosen
    if chosen.sharing.nunique() > 1:
        return {}
    only = _modes(chosen.sharing)
    return {
        "private against shared models": f"{only} models only",
        ": a flat private line far above the shared one is the per-agent copy of the model.": (
            f": this sweep measured {only} models only, so no line compares the two."
        ),
    }


@figure(
    "memory_vs_agents",
    caption="Memory each agent adds, against the number of agents, private against shared "
    "models (largest grid): a flat private line far above the shared one is the per-agent "
    "copy of the model.",
    words=_agents_words,
)
def memory_vs_agents(frame: pd.DataFrame, path: Path) -> Path:
    def table_of(probe):
        table = per_config(frame, selector("build", "agents", "per_agent_bytes", probe))
        return table[table.grid == table.grid.max()] if not table.empty else table

    def draw(ax, probe, table):
        colours = palette(table)
        for key, group in table.groupby(["backend", "storage", "dtype", "sharing"]):
            group = group.sort_values("agents")
            style = "o-" if key[3] == "private" else "s--"
            ax.plot(group.agents, group.value / 1e6, style, color=colours[key[:3]],
                    label=" ".join(key))  # fmt: skip
        measured_ticks(ax, table.agents)
        ax.set_xlabel("agents")
        ax.set_ylabel(f"bytes per agent (MB) [{probe}]")
        ax.set_title(f"per_agent_bytes [{probe}], grid {table.grid.max()}")
        ax.legend(fontsize=6)

    probes_here = _measured_probes(frame, "build", lambda probe: "per_agent_bytes")
    return _probe_panels(path, probes_here, table_of, draw)


@figure(
    "precision_vs_memory",
    caption="Each configuration's belief error against the float64 reference versus its "
    "resident memory (largest grid and agent count): points on the stepped line are the "
    "Pareto front, no other variant is both smaller and as precise.",
)
def precision_vs_memory(frame: pd.DataFrame, path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(8, 5))
    points = precision_points(frame)
    if points.empty:
        empty(ax)
        return save(fig, path)
    # An exact match (error 0) has no logarithm: it is drawn at a floor below every
    # non-zero error and the axis says so.
    positive = points.value[points.value > 0]
    floor = positive.min() / 10 if not positive.empty else 1e-16
    shown = points.assign(error=points.value.clip(lower=floor), mb=points.memory / 1e6)
    colours = palette(shown)
    for key, group in shown.groupby(["backend", "storage", "dtype"]):
        for sharing, marker in (("private", "o"), ("shared", "s")):
            part = group[group.sharing == sharing]
            if not part.empty:
                ax.scatter(part.mb, part.error, marker=marker, color=colours[key],
                           label=" ".join((*key, sharing)))  # fmt: skip
    for position, (_, own) in enumerate(shown.groupby("world", sort=False)):  # one per world
        front = pareto(own, "mb", "error")
        ax.step(front.mb, front.error, where="post", color="black", linewidth=1)
        ax.scatter(front.mb, front.error, s=120, facecolors="none", edgecolors="black",
                   label="Pareto front" if position == 0 else None)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.axhline(floor, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel(f"import + peak (MB) [{footprint_text('resident')}]", fontsize=7)
    ax.set_ylabel(f"max |q(s) − q_ref(s)| (dotted line: exactly 0, drawn at {floor:.1e})")
    ax.legend(fontsize=6, loc="best")
    return save(fig, path)


@figure(
    "step_time_vs_grid",
    caption="Median wall time of one step (every operation, one agent) against N (log-log): "
    "what each storage, dtype and backend costs in time as the grid grows.",
)
def step_time_vs_grid(frame: pd.DataFrame, path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(8, 5))
    sel = selector("summary", "all", "step_seconds", probes.CLOCK)
    lines_vs_states(ax, _one_agent(per_config(frame, sel)), 1e3)
    ax.set_ylabel(f"median step time (ms) [{probes.CLOCK}]")
    return save(fig, path)


@figure(
    "memory_breakdown",
    caption="Where each backend's memory goes (in each world, where a sweep measured "
    "several), at its base configuration: the whole "
    "process's peak (vmhwm) as the fixed cost, the model's and the agents' builds and the "
    "rest (what the calls added; left of zero where the builds' temporaries were gone "
    "before the peak), all read by one probe, so the bar is the peak.",
)
def memory_breakdown(frame: pd.DataFrame, path: Path) -> Path:
    from memsweep.report import breakdown  # the figures' registry is imported early
    from memsweep.report.queries import Tables

    bars = breakdown.stacked(Tables(frame))
    fig, ax = pyplot().subplots(figsize=(8, 1.2 + 0.6 * max(len(bars), 1)))
    for row, (_, parts) in enumerate(bars.iterrows()):
        start = 0.0
        for position, (part, mb) in enumerate(parts.dropna().items()):
            color = f"C{position}"
            ax.barh(row, mb, left=start if mb >= 0 else start + mb, color=color,
                    label=part if row == 0 else None)  # fmt: skip
            start += mb
    ax.set_yticks(range(len(bars)), list(bars.index))
    ax.set_xlabel("MB [vmhwm]")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize="small")
    return save(fig, path)


def _last_steps(frame: pd.DataFrame) -> pd.DataFrame:
    """Growth rows of the largest grid and agent count, private models where measured."""
    chosen = frame[(frame.phase == "growth") & (frame.status == "ok") & frame.step.notna()]
    if chosen.empty:
        return chosen
    chosen = chosen[(chosen.grid == chosen.grid.max()) & (chosen.agents == chosen.agents.max())]
    private = chosen[chosen.sharing == "private"]
    return private if not private.empty else chosen


@figure(
    "memory_over_steps",
    caption="Memory after each step of the first repeat, relative to the first step (largest "
    "grid and agent count, private models): a rising line is growth over steps; a flat one "
    "means the steady state holds no new memory.",
    words=lambda frame: {"private models": f"{_modes(_last_steps(frame).sharing)} models"},
)
def memory_over_steps(frame: pd.DataFrame, path: Path) -> Path:
    chosen = _last_steps(frame)

    def table_of(probe):
        if chosen.empty:
            return chosen
        return chosen[(chosen.metric == LEVEL_PROBES[probe]) & (chosen.probe == probe)]

    def draw(ax, probe, rows):
        colours = palette(rows)
        for _, group in rows.groupby("config_id"):
            group = group.sort_values("step")
            relative = (group.value - group.value.iloc[0]) / 1e6
            key = tuple(group.iloc[0][["backend", "storage", "dtype"]])
            ax.plot(group.step, relative, color=colours[key], label=label(group.iloc[0]))
        ax.set_xlabel("step (first repeat)")
        ax.set_ylabel(f"{LEVEL_PROBES[probe]} − first step (MB) [{probe}]")
        ax.set_title(f"growth {LEVEL_PROBES[probe]} [{probe}]")
        ax.legend(fontsize=6)

    probes_here = _measured_probes(frame, "growth", LEVEL_PROBES.get)
    return _probe_panels(path, probes_here, table_of, draw)


@figure(
    "predicted_vs_measured",
    caption="The plan's predicted memory against the measured import plus peak of each job "
    "(MB): points below the diagonal were under-predicted.",
    source="prediction",
)
def predicted_vs_measured(prediction: pd.DataFrame, path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(6, 5))
    if prediction.empty:
        empty(ax)
        return save(fig, path)
    for backend, group in prediction.groupby("backend"):
        ax.scatter(group.predicted_mb, group.measured_mb, label=backend, s=14)
    top = max(prediction.predicted_mb.max(), prediction.measured_mb.max()) * 1.05
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="measured = predicted")
    ax.set_xlabel("predicted MB (plan)")
    ax.set_ylabel(f"measured MB: {footprint_text('resident')}", fontsize=7)
    ax.legend(fontsize=7)
    return save(fig, path)


def paths(folder) -> dict[str, Path]:
    """Where :func:`write_all` draws each registered figure (name -> path)."""
    return {name: Path(folder) / f"{name}.png" for name in REGISTRY}


def write_all(frame: pd.DataFrame, prediction: pd.DataFrame, folder) -> dict[str, Path]:
    """Every registered figure into ``folder``; returns name -> path."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    tables = {"frame": frame, "prediction": prediction}
    return {
        name: REGISTRY[name].draw(tables[REGISTRY[name].source], path)
        for name, path in paths(folder).items()
    }


@contextlib.contextmanager
def drawn_beside(frame: pd.DataFrame, prediction: pd.DataFrame, folder):
    """:func:`write_all` in a process of its own while the caller goes on; yields the
    figures' paths, and on leaving waits for them (raising the child's error, if any).

    Matplotlib's drawing is a third of a report's time, and the sections that name the
    figures need only their paths. The child is ``python -m memsweep.report.figures
    --draw``, handed the tables pickled (exact, dtypes included): not a fork, which would
    copy this process's libraries' threads, and not multiprocessing's ``spawn``, which
    runs the parent's main script again (under Snakemake, the report rule's script).
    """
    import pickle
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="memsweep-figures-") as scratch:
        tables = Path(scratch) / "tables.pickle"
        tables.write_bytes(pickle.dumps((frame, prediction)))
        command = [sys.executable, "-m", "memsweep.report.figures", "--draw", str(tables),
                   str(folder)]  # fmt: skip
        child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        try:
            yield paths(folder)
        finally:
            _, errors = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"drawing the figures failed:\n{errors}")


def rst() -> str:
    """The Snakemake report's caption template: each figure's caption, chosen by its name."""
    lines = [
        ".. Caption of each figure of the memsweep report, chosen by the file's name.",
        ".. Generated from memsweep.report.figures; do not edit. Rewrite it with:",
        f"..   {RST_COMMAND}",
        "",
    ]
    for position, entry in enumerate(REGISTRY.values()):
        keyword = "if" if position == 0 else "elif"
        lines += [f'{{% {keyword} snakemake.wildcards.name == "{entry.name}" %}}', entry.caption]
    lines += ["{% else %}", "A figure of the memsweep hotspot report.", "{% endif %}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m memsweep.report.figures")
    parser.add_argument("--rst", action="store_true", help="print workflow/report/figures.rst")
    parser.add_argument(
        "--draw", nargs=2, metavar=("TABLES", "FOLDER"),
        help="draw every figure into FOLDER from the pickled (frame, prediction) in TABLES "
        "(the report's child: drawn_beside)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.draw:
        import pickle

        frame, prediction = pickle.loads(Path(args.draw[0]).read_bytes())
        write_all(frame, prediction, args.draw[1])
    elif args.rst:
        print(rst(), end="")
    else:
        print("\n".join(REGISTRY))


if __name__ == "__main__":
    main()
