"""Memory needed: each measured configuration's whole footprint and its parts.

Every part is one selector under one probe (the column header names it), so a row
shows figures side by side and never adds, subtracts or ranks two probes' figures:
the total is the kernel's own peak of the whole process, not the sum of the parts.
A figure below its probe's resolution is shown ``< N``; a probe blind to a backend
says so instead of a figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from memsweep.harness import probes
from memsweep.plan.jobs import ALLOCATOR, allocator_words
from memsweep.report import text
from memsweep.report.fixes import blind, blind_probes
from memsweep.report.formats import Unresolved
from memsweep.report.queries import (
    WORLD,
    Tables,
    figure,
    is_resolved,
    names_world,
    one_axis,
    selector,
    several_worlds,
    with_world,
    world_of,
    worlds,
)
from memsweep.world.base import DEFAULT_WORLD


@dataclass(frozen=True)
class Part:
    """One column of the table: ``sel``'s figure per configuration (× agents if per agent)."""

    name: str
    sel: dict
    per_agent: bool = False

    @property
    def header(self) -> str:
        return f"{self.name} [{self.sel['probe']}]"


TOTAL = Part("total footprint", selector("summary", "all", "total_peak_bytes", probes.VMHWM))
PARTS = (
    TOTAL,
    Part("fixed cost", selector("import", "total", "anon_bytes", probes.ANON)),
    Part("model", selector("summary", "all", "model_bytes", probes.EXACT)),
    Part("agents", selector("build", "agents", "per_agent_bytes", probes.TRACEMALLOC), True),
    Part("agents", selector("build", "agents", "per_agent_bytes", probes.ANON), True),
    Part("step peak", selector("step", None, "call_peak_bytes", probes.VMHWM)),
)
# Where a backend's memory is split into parts under one probe: the first of these that
# sees the backend whole (tracemalloc is exact but blind to XLA's buffers).
PRIMARY = (probes.TRACEMALLOC, probes.ANON)


def primary_probe(backend: str) -> str:
    """The probe a backend's parts are compared under: tracemalloc where it sees them all."""
    return next((p for p in PRIMARY if p not in blind_probes(backend)), PRIMARY[-1])


def part_table(tables: Tables, part: Part) -> pd.DataFrame:
    """Per configuration: the part's value, resolution and ``resolved`` (× agents where
    the figure is per agent: the probe measured the agents' growth as a whole)."""
    table = tables.per_config(part.sel)
    if part.per_agent and not table.empty:
        value = table.value * table.agents.astype(float)
        table = table.assign(value=value, resolved=is_resolved(value, table.resolution))
    return table


def part_figure(tables: Tables, part: Part, config: pd.Series) -> float | Unresolved | str | None:
    """One configuration's figure of ``part``; text where its probe cannot see the backend."""
    why = blind(part.sel["probe"], config)
    if why:
        return text.BLIND
    table = part_table(tables, part)
    hit = table[table.config_id == config["config_id"]]
    if hit.empty or pd.isna(hit.value.iloc[0]):
        return None
    found = figure(hit.iloc[0])
    return found if isinstance(found, Unresolved) else float(found)


# The settings a user chooses (the changes of :mod:`memsweep.report.changes`); the rest of
# a configuration (grid, agents) is the problem they solve.
CHOICES = ("sharing", "dtype", "storage", "policy_len", *ALLOCATOR)
PROBLEM = ("grid", "agents")


def _variants(configs: pd.DataFrame, base: pd.Series) -> int:
    """How many configurations differ from ``base`` in exactly one choice."""
    return sum(len(one_axis(configs, base, choice)) for choice in CHOICES)


def largest(tables: Tables, backend: str, world: str | None = None) -> pd.Series | None:
    """The backend's base configuration in ``world`` (None: the first world the backend
    was measured in, the default's where it was): at its largest problem (grid, then
    agents), the one with the most measured one-axis changes (the base a sweep's fixes
    were measured from, e.g. the default's ``also`` sweeps), then the largest resolved
    total footprint. Between two configurations a few per cent apart (JAX's private and
    shared models) the larger is noise; the base with its changes measured is the one to
    learn from. Configurations of two worlds are never compared: each world has its own."""
    totals = with_world(tables.per_config(TOTAL.sel))
    totals = totals[(totals.backend == backend) & totals.resolved.astype(bool)]
    if world is None and not totals.empty:
        world = worlds(totals)[0]
    totals = totals[totals[WORLD] == world]
    if totals.empty:
        return None
    for column in PROBLEM:
        totals = totals[totals[column] == totals[column].max()]
    configs = tables.configs.set_index("config_id", drop=False)
    ranked = totals.assign(
        variants=[_variants(tables.configs, configs.loc[c]) for c in totals.config_id]
    ).sort_values(["variants", "value"], ascending=False, kind="stable")
    return configs.loc[ranked.config_id.iloc[0]]


def bases(tables: Tables) -> list[tuple[str, str]]:
    """Every (backend, world) a sweep measured, by backend, then the default world first:
    each has its own base configuration (:func:`largest`)."""
    configs = with_world(tables.configs)
    return [
        (backend, world)
        for backend in sorted(configs.backend.unique())
        for world in worlds(configs[configs.backend == backend])
    ]


def heading(backend: str, world: str, configs: pd.DataFrame) -> str:
    """A backend's name, with the world where the words must name it (several worlds,
    or one that is not the default): ``pymdp-numpy · cue-chaining``."""
    shown = names_world({WORLD: world}, configs)
    return f"{backend} · {world}" if shown else str(backend)


def order(configs: pd.DataFrame) -> pd.DataFrame:
    """Configurations by backend, then world, then by the problem's size, then by the
    remedies."""
    axes = ["backend", "other_world", WORLD, "grid", "agents", "storage", "dtype", "sharing",
            "policy_len", *ALLOCATOR]  # fmt: skip
    marked = configs.assign(other_world=with_world(configs)[WORLD] != DEFAULT_WORLD)
    ordered = marked.sort_values([a for a in axes if a in marked], kind="stable")
    return ordered.drop(columns="other_world")


def agents_text(count: int) -> str:
    return f"{count} agent{'s' if count != 1 else ''}"


def label(config: pd.Series, policy: bool = False, world: bool = False) -> str:
    """A configuration in words, its axes joined by dots (``policy``: name its policy
    length too, for a sweep of several); its world where it is not the default, or
    wherever ``world`` says (a sweep of several worlds)."""
    words = text.CONFIG_WORDS.format(
        backend=config["backend"],
        storage=config["storage"],
        dtype=config["dtype"],
        grid=config["grid"],
        agents=agents_text(int(config["agents"])),
        sharing=config["sharing"],
    )
    words += text.POLICY_WORDS.format(policy_len=config["policy_len"]) if policy else ""
    words += "".join(f" · {words}" for words in allocator_words(config))
    named = world_of(config)
    return words + (text.WORLD_WORDS.format(world=named) if world or names_world(config) else "")


def several_policies(configs: pd.DataFrame) -> bool:
    return "policy_len" in configs and configs.policy_len.nunique() > 1


def needed_table(tables: Tables) -> pd.DataFrame:
    """One row per measured configuration: its label, its id beside it, every part."""
    out, policy = [], several_policies(tables.configs)
    several = several_worlds(tables.configs)
    for _, config in order(tables.configs).iterrows():
        row = {"configuration": label(config, policy, several), "config": config["config_id"]}
        for part in PARTS:
            row[part.header] = part_figure(tables, part, config)
        out.append(row)
    return pd.DataFrame(out)
