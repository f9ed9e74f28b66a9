"""The report's first screen, the memory each configuration needs and the changes a user
would make, on a small table made by hand: each test states the figures it puts in and
the sentences, verdicts and cells that must come out of them.
"""

from __future__ import annotations

import pandas as pd
import pytest

from memsweep.harness import probes
from memsweep.report import (
    build,
    changes,
    figures,
    firstscreen,
    hotspots,
    needed,
    queries,
    sections,
    text,
)
from memsweep.report.changes import COSTS_MORE, NO_SAVING, NOT_COMPUTED, SAVES, judge
from memsweep.report.document import anchor
from memsweep.report.fixes import Saving
from memsweep.report.formats import Unresolved, fmt_bytes, fmt_percent
from memsweep.report.queries import Tables

from .test_report_units import config, make_df, ranked_table, row

RESOLUTION = {probes.VMHWM: 1e6, probes.ANON: 1e6, probes.TRACEMALLOC: 4e3}
BIG = {"grid": 20, "agents": 10}
NP = config(backend="pymdp-numpy", **BIG)
NP_SHARED = config(backend="pymdp-numpy", sharing="shared", **BIG)
NP_F32 = config(backend="pymdp-numpy", dtype="float32", **BIG)
NP_CSR = config(backend="pymdp-numpy", storage="csr", **BIG)
NP_LONG = config(backend="pymdp-numpy", policy_len=2, **BIG)
NP_LONG["config_id"] += "-policy2"
JAX = config(backend="pymdp-jax", **BIG)
JAX_SHARED = config(backend="pymdp-jax", sharing="shared", **BIG)
JAX_F32 = config(backend="pymdp-jax", dtype="float32", **BIG)
LEAN = config(backend="lean", **BIG)
# Per configuration: total footprint [vmhwm], import [rss_anon], model [nbytes], agents'
# growth [tracemalloc] and [rss_anon], step peak [vmhwm], belief error, action agreement,
# step seconds. pymdp-jax's tracemalloc figures are small: it is blind to XLA's buffers.
FIGURES = {
    "NP": (NP, 300e6, 100e6, 7.7e6, 77e6, 76e6, 0.5e6, 0.0, 1.0, 0.28),
    "NP_SHARED": (NP_SHARED, 222e6, 100e6, 7.7e6, 0.01e6, 0.0, 0.5e6, 0.0, 1.0, 0.29),
    "NP_F32": (NP_F32, 256e6, 100e6, 3.85e6, 38.5e6, 38e6, 0.5e6, 1.1e-7, 0.95, 0.17),
    "NP_CSR": (NP_CSR, 295e6, 100e6, 0.1e6, 1e6, 1e6, 0.5e6, 0.0, 1.0, 0.5),
    "NP_LONG": (NP_LONG, 0.5e6, 100e6, 7.7e6, 77e6, 76e6, 0.5e6, 0.0, 1.0, 0.6),
    "JAX": (JAX, 612e6, 160e6, 7.7e6, 0.05e6, 10e6, 94e6, 4.6e-14, 0.95, 0.19),
    "JAX_SHARED": (JAX_SHARED, 610e6, 160e6, 7.7e6, 0.05e6, 10e6, 90e6, 4.6e-14, 0.95, 0.18),
    "JAX_F32": (JAX_F32, 520e6, 160e6, 3.85e6, 0.05e6, 5e6, 47e6, 1.1e-7, 1.0, 0.09),
    "LEAN": (LEAN, 175e6, 10e6, 7.7e6, 77e6, 76e6, 0.09e6, 0.0, 1.0, 0.02),
}


def table() -> pd.DataFrame:
    rows = []
    for cfg, total, imported, model, traced, anon, peak, error, agree, seconds in FIGURES.values():
        agents = cfg["agents"]
        rows += [
            row(cfg, "summary", "all", "total_peak_bytes", "vmhwm", total),
            row(cfg, "import", "total", "anon_bytes", "rss_anon", imported),
            row(cfg, "summary", "all", "model_bytes", "nbytes", model),
            row(cfg, "build", "agents", "growth_bytes", "tracemalloc", traced),
            row(cfg, "build", "agents", "growth_bytes", "rss_anon", anon),
            row(cfg, "build", "agents", "per_agent_bytes", "tracemalloc", traced / agents),
            row(cfg, "build", "agents", "per_agent_bytes", "rss_anon", anon / agents),
            row(cfg, "step", "step", "call_peak_bytes", "vmhwm", peak, step=0),
            row(cfg, "step", "step", "call_peak_bytes", "vmhwm", peak / 2, step=1),
            row(cfg, "precision", "step", "max_abs_qs_error", "reference_trace", error, unit="1"),
            row(cfg, "precision", "step", "action_agreement", "reference_trace", agree, unit="1"),
            row(cfg, "summary", "all", "step_seconds", "perf_counter", seconds, unit="s"),
        ]
    return make_df(*rows)


@pytest.fixture(scope="module")
def tables() -> Tables:
    return Tables(table(), RESOLUTION)


@pytest.fixture(scope="module")
def found(tables) -> dict[str, changes.Remedies]:
    return {r.backend: r for r in changes.every_backend(tables)}


def by_axis(r: changes.Remedies) -> dict[str, changes.Change]:
    return {f"{c.axis} {c.new}": c for c in r.changes}


# The largest configuration, its biggest part and its changes ----------------------------


def test_each_backend_starts_from_its_largest_total_footprint(found):
    assert sorted(found) == ["lean", "pymdp-jax", "pymdp-numpy"]
    assert found["pymdp-numpy"].base.config_id == NP["config_id"]
    assert found["pymdp-numpy"].total == FIGURES["NP"][1]
    assert found["pymdp-jax"].base.config_id == JAX["config_id"]  # 612 MB > shared's 610 MB


def test_the_biggest_part_is_ranked_under_the_backends_primary_probe(found):
    numpy, jax = found["pymdp-numpy"], found["pymdp-jax"]
    assert needed.primary_probe("pymdp-numpy") == probes.TRACEMALLOC
    assert needed.primary_probe("pymdp-jax") == probes.ANON  # tracemalloc is blind to it
    assert (numpy.probe, numpy.part.key, numpy.part.value) == ("tracemalloc", "agents", 77e6)
    # Under rss_anon the import (160 MB) outranks the agents (10 MB).
    assert (jax.probe, jax.part.key, jax.part.value) == ("rss_anon", "import", 160e6)


def test_savings_are_of_the_whole_footprint_every_other_axis_equal(found, tables):
    numpy = found["pymdp-numpy"]
    changed = by_axis(numpy)
    assert set(changed) == {"sharing shared", "dtype float32", "storage csr", "policy_len 2"}
    for c in numpy.changes:
        # A setting the table does not hold (the allocator's, here) is null in both.
        differs = [
            a
            for a in ("backend", *changes.AXES)
            if not (pd.isna(c.variant[a]) and pd.isna(numpy.base[a]))
            and c.variant[a] != numpy.base[a]
        ]
        assert differs == [c.axis]
        assert c.whole.probe == probes.VMHWM
    sharing = changed["sharing shared"]
    assert (sharing.verdict, sharing.whole.bytes) == (SAVES, 300e6 - 222e6)
    assert sharing.whole.fraction == pytest.approx(78 / 300)
    assert sharing.part.probe == "tracemalloc" and sharing.part.bytes == 77e6 - 0.01e6
    assert sharing.time_ratio == pytest.approx(0.29 / 0.28)
    assert changes.precision_cost(sharing) == {}
    # float32 saves too, at a precision cost: the error rises and fewer actions agree.
    cost = changes.precision_cost(changed["dtype float32"])
    assert cost == {"max_abs_qs_error": (0.0, 1.1e-7), "action_agreement": (1.0, 0.95)}
    assert numpy.best is sharing  # 78 MB beats float32's 44 MB


def test_a_change_that_saves_nothing_is_never_the_best(found):
    # 5 MB of 300 MB, and 2 MB of 612 MB: within the 5 % spread of a whole footprint.
    csr = by_axis(found["pymdp-numpy"])["storage csr"]
    assert (csr.verdict, csr.whole.bytes) == (NO_SAVING, 300e6 - 295e6)
    jax = found["pymdp-jax"]
    sharing = by_axis(jax)["sharing shared"]
    assert sharing.verdict == NO_SAVING
    assert sharing.part is None  # sharing does not act on the import
    assert jax.best is by_axis(jax)["dtype float32"]
    assert len(jax.futile) == 1 and jax.futile[0] is sharing


def test_a_change_that_raises_the_footprint_costs_more():
    assert judge(Saving("vmhwm", 300e6, 330e6), 1e6) == (COSTS_MORE, "")
    verdict, why = judge(Saving("vmhwm", 300e6, 310e6), 1e6)
    assert verdict == NO_SAVING and "within 5%" in why


def test_no_saving_from_a_figure_below_resolution_or_a_negative_base(found):
    longer = by_axis(found["pymdp-numpy"])["policy_len 2"]
    assert longer.verdict == NOT_COMPUTED and longer.whole.bytes is None
    assert isinstance(longer.whole.variant, Unresolved)
    assert "variant below vmhwm's resolution" in longer.why
    verdict, why = judge(Saving("vmhwm", -5e6, 1e6), 1e6)
    assert verdict == NOT_COMPUTED and "not a positive size" in why


def test_switching_backend_is_listed_apart_and_compares_the_whole_footprint(found):
    numpy = found["pymdp-numpy"]
    assert all(c.axis != "backend" for c in numpy.changes)
    switches = {c.new: c for c in numpy.switches}
    assert set(switches) == {"lean", "pymdp-jax"}
    assert switches["lean"].whole.bytes == 300e6 - 175e6 and switches["lean"].verdict == SAVES
    assert switches["pymdp-jax"].verdict == COSTS_MORE
    assert all(c.part is None for c in numpy.switches)  # the primary probes differ


def test_a_backend_without_variants_says_so():
    alone = Tables(make_df(row(LEAN, "summary", "all", "total_peak_bytes", "vmhwm", 90e6)))
    (r,) = changes.every_backend(alone)
    assert r.changes == [] and r.switches == [] and r.part is None
    said = firstscreen.sentences(r)
    assert "No one-axis variant of it within lean was measured." in said
    assert "No part of it reaches tracemalloc's resolution." in said
    switching = firstscreen.switching([r])
    assert switching.blocks[-1] == ("text", firstscreen.text.SWITCH_NONE)


# The sentences -----------------------------------------------------------------------------


def test_the_first_screen_says_the_peak_its_biggest_part_and_the_best_fix(found):
    said = firstscreen.sentences(found["pymdp-numpy"])
    assert said.startswith(
        f"pymdp-numpy: at G=20 with 10 private agents (dense, float64) it peaks at "
        f"{fmt_bytes(300e6)} (total_peak_bytes [vmhwm]"
    )
    assert (
        f"Its biggest part under tracemalloc is the 10 agents: {fmt_bytes(77e6)} "
        f"({fmt_bytes(7.7e6)} each: every agent holds its own copy of the {fmt_bytes(7.7e6)} "
        "model [nbytes])." in said
    )
    assert (
        "Sharing one model among the agents (sharing private → shared) saves "
        f"{fmt_bytes(78e6)} ({fmt_percent(78 / 300)}) of that peak ({fmt_bytes(77e6 - 0.01e6)} "
        "of its biggest part [tracemalloc]) at no precision cost" in said
    )
    assert (
        "storing the model as csr (storage dense → csr) saves nothing "
        f"({fmt_bytes(295e6)} against {fmt_bytes(300e6)})" in said
    )


def test_a_sharing_that_saves_nothing_on_one_backend_is_said(found):
    said = firstscreen.sentences(found["pymdp-jax"])
    assert "Storing the model in float32 (dtype float64 → float32) saves" in said
    assert "at a precision cost (max_abs_qs_error 4.6e-14 → 1.1e-07)" in said
    assert (
        "On pymdp-jax, sharing one model among the agents (sharing private → shared) saves "
        f"nothing ({fmt_bytes(610e6)} against {fmt_bytes(612e6)})" in said
    )


# The memory needed ---------------------------------------------------------------------------


def test_memory_needed_has_one_row_per_configuration_with_each_part_under_its_probe(tables):
    shown = needed.needed_table(tables).set_index("config")
    assert len(shown) == len(FIGURES)
    assert list(shown.columns) == [
        "configuration", "total footprint [vmhwm]", "fixed cost [rss_anon]", "model [nbytes]",
        "agents [tracemalloc]", "agents [rss_anon]", "step peak [vmhwm]",
    ]  # fmt: skip
    assert not any(probes.USS in column for column in shown.columns)
    numpy = shown.loc[NP["config_id"]]
    assert numpy.configuration == (
        "pymdp-numpy · dense · float64 · G=20 · 10 agents · private · policy_len 1"
    )  # the sweep has two policy lengths
    assert numpy["total footprint [vmhwm]"] == 300e6
    assert numpy["fixed cost [rss_anon]"] == 100e6
    assert numpy["model [nbytes]"] == 7.7e6
    assert numpy["agents [tracemalloc]"] == pytest.approx(77e6)  # per agent × 10 agents
    assert numpy["agents [rss_anon]"] == pytest.approx(76e6)
    assert numpy["step peak [vmhwm]"] == Unresolved(1e6)  # 0.5 MB: below resolution
    jax = shown.loc[JAX["config_id"]]
    assert jax["agents [tracemalloc]"] == "blind"
    assert jax["step peak [vmhwm]"] == 94e6  # the maximum over steps
    assert shown.loc[NP_SHARED["config_id"], "agents [rss_anon]"] == Unresolved(1e6)


def test_labels_name_the_policy_length_only_where_the_sweep_has_several(tables):
    assert needed.several_policies(tables.configs)
    assert needed.label(pd.Series(NP_LONG), True).endswith(" · policy_len 2")
    assert " policy" not in needed.label(pd.Series(NP_LONG))


# The report as a whole ----------------------------------------------------------------------


def test_the_report_opens_with_the_glance_then_memory_needed(tmp_path):
    frame = table()
    plan = queries.configurations(frame).assign(status="run", reason=None, predicted_mb=100.0)
    _, parts = build.build(frame, plan, pd.DataFrame({"probe": []}), tmp_path)
    assert [p.title for p in parts[:2]] == ["At a glance", "Memory needed"]
    glance = [content for kind, content in parts[0].blocks if kind == "text"]
    assert [s.split(":")[0] for s in glance] == ["lean", "pymdp-jax", "pymdp-numpy"]
    # It links the section that gives each number's rows: a filter per backend.
    [(_, href)] = [content for kind, content in parts[0].blocks if kind == "link"]
    [sources] = [p for p in parts if p.title == text.GLANCE_SOURCES_TITLE]
    assert href == "#" + anchor(sources.title) == "#where-the-numbers-at-a-glance-come-from"
    sourced = [content for kind, content in sources.blocks if kind == "items"]
    assert [items[0][0].split(":")[0] for items in sourced] == ["lean", "pymdp-jax", "pymdp-numpy"]
    assert all("config_id=" in rows and "metric=" in rows for items in sourced for _, rows in items)
    (needed_block,) = [content for kind, content in parts[1].blocks if kind == "table"]
    assert len(needed_block.frame) == len(FIGURES)


def test_each_ranking_table_orders_one_probe_only():
    frame = ranked_table()
    context = sections.Context(
        frame=frame, plan=pd.DataFrame(), calibration=pd.DataFrame(),
        ranked=hotspots.rank(frame), prediction=pd.DataFrame(), figures={},
    )  # fmt: skip
    ranking = sections.ranking(context)
    assert [s.title for s in ranking.subsections] == [
        f"Ranked by {p}" for p in hotspots.ranking_probes(frame)
    ]
    checked = 0
    for section in ranking.subsections:
        probe = section.title.removeprefix("Ranked by ")
        tables = [content.frame for kind, content in section.blocks if kind == "table"]
        for shown in tables:
            worst = [c for c in shown if c.startswith("worst [")]
            assert worst == [f"worst [{probe}]"]
            values = list(shown[f"worst [{probe}]"])
            assert values == sorted(values, reverse=True)
            assert list(shown["#"]) == list(range(1, len(shown) + 1))
            checked += 1
    assert checked == 2  # rss_anon and tracemalloc rank here; vmhwm measured nothing


def test_less_than_a_byte_is_never_printed_in_scientific_notation():
    assert fmt_bytes(8.09e-08) == "< 1 B"
    assert fmt_bytes(-3e-9) == "> -1 B"
    assert fmt_bytes(0.0) == "0 B"
    assert fmt_bytes(512.0) == "512 B"


def test_captions_describe_the_sweep_at_hand():
    """A sweep of shared models only: no caption speaks of private models."""
    shared = config(sharing="shared", grid=4, agents=2)
    frame = make_df(
        row(shared, "build", "agents", "per_agent_bytes", "tracemalloc", 1e6),
        *(row(shared, "growth", "step", "traced_bytes", "tracemalloc", 1e6, step=s)
          for s in range(3)),
    )  # fmt: skip
    for name in figures.REGISTRY:
        assert "private" not in figures.caption(name, frame), name
    assert "shared models only" in figures.caption("memory_vs_agents", frame)
    assert "(largest grid and agent count, shared models)" in figures.caption(
        "memory_over_steps", frame
    )
    # Without a sweep, the generic caption (the Snakemake report's).
    assert figures.caption("memory_over_steps") == figures.REGISTRY["memory_over_steps"].caption


def test_uss_enters_no_saving_and_no_footprint():
    frame = pd.concat(
        [
            ranked_table(),
            make_df(
                row(config(), "build", "model", "growth_bytes", "psutil_uss", 60e6),
                row(config(storage="csr"), "build", "model", "growth_bytes", "psutil_uss", 1e6),
            ),
        ],
        ignore_index=True,
    )
    model = next(h for h in hotspots.rank(frame) if h.consumer.key == "model_built")
    assert model.worst[probes.USS].value == 60e6  # shown as measured, in its own column
    (to_csr,) = model.fixes
    assert probes.USS not in to_csr.saving
    assert to_csr.saving[probes.ANON].bytes == 30e6 - 5e6
    assert all(probes.USS not in str(part) for part in queries.FOOTPRINTS.values())
    assert all(part.sel["probe"] != probes.USS for part in needed.PARTS)


def test_each_number_of_the_glance_is_what_its_rows_give(tmp_path):
    """The filter beside a number, applied to the measurement rows, gives that number."""
    frame = table()
    found = changes.every_backend(queries.Tables(frame))
    checked = 0
    for remedies in found:
        for number, rows in firstscreen.sources(remedies)[:2]:  # the peak and the biggest part
            filters, _, times = rows.partition(" × ")
            wanted = dict(pair.split("=", 1) for pair in filters.split())
            mask = pd.Series(True, index=frame.index)
            for column, value in wanted.items():
                mask &= frame[column].astype(str) == value
            value = frame[mask].value.max() * (int(times) if times else 1)
            assert fmt_bytes(value) == number, (remedies.backend, rows)
            checked += 1
    assert checked >= 4
