"""The report of a sweep of several worlds, on small tables made by hand: configurations
are compared within one world only, the per-backend sections are per backend and world,
a configuration's words name its world, fits are per world, and a model's per-array rows
are a breakdown of its A, B, C, D, never added to them.
"""

from __future__ import annotations

import pandas as pd
import pytest

from memsweep.harness import probes
from memsweep.report import (
    breakdown,
    build,
    changes,
    claims,
    detail,
    firstscreen,
    fits,
    fixes,
    hotspots,
    needed,
    predictor,
    queries,
)
from memsweep.report.queries import Tables

from .test_predictor import lean_jobs, tidy
from .test_report_units import config, make_df, per_agent_claim, row

RESOLUTION = {probes.VMHWM: 1e6, probes.ANON: 1e6, probes.TRACEMALLOC: 4e3}
CUE = "cue-chaining"


def at(world: str = "grid", **axes) -> dict:
    """A configuration of ``world`` (its id names the world, as a job's id hashes it)."""
    cfg = config(backend="pymdp-numpy", **axes) | {"world": world}
    return cfg | {"config_id": f"{cfg['config_id']}-{world}"}


# The grid world at grids 5 and 10, cue-chaining at grid 5 only (its largest), each with
# its base (dense) and a storage change (csr); the grid world's csr saves, cue-chaining's
# costs more, and its float32 saves.
G10, G10_CSR = at(grid=10, agents=2), at(grid=10, agents=2, storage="csr")
G5 = at(grid=5, agents=2)
C5, C5_CSR = at(CUE, grid=5, agents=2), at(CUE, grid=5, agents=2, storage="csr")
C5_F32 = at(CUE, grid=5, agents=2, dtype="float32")
TOTALS = {  # total footprint [vmhwm], MB
    "G10": (G10, 400), "G10_CSR": (G10_CSR, 300), "G5": (G5, 250),
    "C5": (C5, 200), "C5_CSR": (C5_CSR, 260), "C5_F32": (C5_F32, 150),
}  # fmt: skip


def frame() -> pd.DataFrame:
    rows = []
    for cfg, total in TOTALS.values():
        rows += [
            row(cfg, "summary", "all", "total_peak_bytes", "vmhwm", total * 1e6),
            row(cfg, "summary", "all", "baseline_bytes", "vmhwm", 100e6),
            row(cfg, "build", "model", "call_peak_bytes", "vmhwm", 20e6),
            row(cfg, "build", "agents", "call_peak_bytes", "vmhwm", 30e6),
            row(cfg, "build", "agents", "growth_bytes", "tracemalloc", total * 1e5),
            row(cfg, "summary", "all", "step_seconds", "perf_counter", 0.1, unit="s"),
        ]
    return make_df(*rows)


@pytest.fixture(scope="module")
def tables() -> Tables:
    return Tables(frame(), RESOLUTION)


def ids(table: pd.DataFrame) -> list[str]:
    return sorted(table.config_id)


# Compared within one world ----------------------------------------------------------------


def test_a_one_axis_change_is_never_matched_across_worlds(tables):
    configs = tables.configs.set_index("config_id", drop=False)
    grid, cue = configs.loc[G10["config_id"]], configs.loc[C5["config_id"]]
    assert ids(queries.one_axis(tables.configs, grid, "storage")) == [G10_CSR["config_id"]]
    # Cue-chaining's grid-5 base has a csr twin of its own; the grid world's grid 5 is no
    # change of it (it differs in the world), nor is the grid world's csr.
    assert ids(queries.one_axis(tables.configs, cue, "storage")) == [C5_CSR["config_id"]]
    assert ids(queries.one_axis(tables.configs, cue, "grid")) == []
    assert ids(fixes.neighbours(tables.configs, cue)) == ids(pd.DataFrame([C5_CSR, C5_F32]))
    # Nor is a configuration that differs in the world only a change of any axis.
    for axis in (*queries.FIX_AXES, "grid", "agents", "policy_len"):
        assert C5["config_id"] not in ids(queries.one_axis(tables.configs, grid, axis))


def test_a_table_without_the_world_column_holds_the_default_world():
    old = frame().drop(columns="world")
    old = old[old.config_id.isin([G10["config_id"], G10_CSR["config_id"], G5["config_id"]])]
    tables = Tables(old, RESOLUTION)
    assert set(tables.configs.world) == {"grid"}
    base = needed.largest(tables, "pymdp-numpy")
    assert base.config_id == G10["config_id"]
    configs = queries.configurations(old)
    assert "world" not in configs
    assert ids(queries.one_axis(configs, base, "storage")) == [G10_CSR["config_id"]]
    # A null world (a file from before the column) is the default world too.
    nulls = frame().assign(world=None)
    assert queries.worlds(nulls) == ["grid"]


def test_each_world_has_its_own_base(tables):
    assert needed.bases(tables) == [("pymdp-numpy", "grid"), ("pymdp-numpy", CUE)]
    assert needed.largest(tables, "pymdp-numpy", "grid").config_id == G10["config_id"]
    # Cue-chaining's largest grid is 5: its base, though the grid world went to 10.
    assert needed.largest(tables, "pymdp-numpy", CUE).config_id == C5["config_id"]


# Per backend and world ---------------------------------------------------------------------


def test_the_changes_are_given_per_backend_and_world(tables):
    found = changes.every_backend(tables)
    assert [(r.backend, r.world) for r in found] == [("pymdp-numpy", "grid"), ("pymdp-numpy", CUE)]
    grid, cue = found
    assert [(c.axis, c.variant.config_id, c.verdict) for c in grid.changes] == [
        ("storage", G10_CSR["config_id"], changes.SAVES)
    ]
    assert [(c.axis, c.variant.config_id, c.verdict) for c in cue.changes] == [
        ("dtype", C5_F32["config_id"], changes.SAVES),
        ("storage", C5_CSR["config_id"], changes.COSTS_MORE),
    ]
    assert cue.best.whole.bytes == pytest.approx(50e6)
    assert (grid.title, cue.title) == ("pymdp-numpy · grid", f"pymdp-numpy · {CUE}")
    section = firstscreen.changes(found, tables.configs)
    titles = [s.title for s in section.subsections[:-1]]  # the last: switching backend
    assert titles == ["pymdp-numpy · grid", f"pymdp-numpy · {CUE}"]


def test_the_first_screen_says_one_thing_per_backend_and_world(tables):
    found = changes.every_backend(tables)
    said = [firstscreen.sentences(r) for r in found]
    assert said[0].startswith("pymdp-numpy · grid: at G=10")
    assert said[1].startswith(f"pymdp-numpy · {CUE}: at G=5")
    assert "100 MB" in said[0]  # csr saves 400 − 300 MB in the grid world
    assert "50 MB" in said[1]  # float32 saves 200 − 150 MB in cue-chaining
    assert said[1].count(CUE) == 2  # its peak, and its change that costs more


def test_the_breakdown_is_per_backend_and_world(tables):
    section = breakdown.section(tables)
    titles = [s.title for s in section.subsections]
    assert len(titles) == 2
    assert titles[0].startswith("pymdp-numpy: pymdp-numpy · dense · float64 · G=10")
    assert titles[0].endswith("· grid") and titles[1].endswith(f"· {CUE}")
    bars = breakdown.stacked(tables)
    assert list(bars.index) == ["pymdp-numpy · grid", f"pymdp-numpy · {CUE}"]
    assert bars.loc[f"pymdp-numpy · {CUE}"].sum() == pytest.approx(200)  # its base's peak
    assert bars.loc["pymdp-numpy · grid"].sum() == pytest.approx(400)


def test_one_world_reads_as_before(tables):
    """A sweep of one world (the grid): no world in the words, one entry per backend."""
    one = frame()
    one = Tables(one[one.world == "grid"], RESOLUTION)
    assert list(breakdown.stacked(one).index) == ["pymdp-numpy"]
    [r] = changes.every_backend(one)
    assert r.title == "pymdp-numpy"
    assert firstscreen.sentences(r).startswith("pymdp-numpy: at G=10")
    assert "grid" not in needed.label(r.base).split(" · ")


# Words ------------------------------------------------------------------------------------


def test_a_label_names_a_world_that_is_not_the_grid(tables):
    configs = tables.configs.set_index("config_id", drop=False)
    assert needed.label(configs.loc[C5["config_id"]]).endswith(f"· {CUE}")
    grid = configs.loc[G10["config_id"]]
    assert needed.label(grid) == "pymdp-numpy · dense · float64 · G=10 · 2 agents · private"
    assert needed.label(grid, world=True).endswith("· grid")
    assert queries.config_label(configs.loc[C5["config_id"]]).endswith(f"world {CUE}")
    # The memory-needed table names every configuration's world in a sweep of several.
    table = needed.needed_table(tables)
    assert all(label.endswith(("· grid", f"· {CUE}")) for label in table.configuration)


def test_hotspots_name_the_world_where_the_sweep_has_several(tables):
    ranked = hotspots.rank(tables.frame, None, RESOLUTION)
    agents = next(h for h in ranked if h.consumer.key == "agents")
    assert agents.where["world"] == [CUE, "grid"]
    assert agents.base.config_id == G10["config_id"]  # the worst: 400 MB · 0.1 traced
    # Its fixes are within its worst configuration's world.
    worst = agents.base
    assert {fix.variant for fix in agents.fixes} <= set(
        tables.configs[tables.configs.world == worst["world"]].config_id
    )


# Fits ------------------------------------------------------------------------------------


def test_fits_are_per_world():
    """The grid world's values are N (exponent 1); cue-chaining's one size, far above it,
    is a world of its own: fitted with the grid world's it would bend the slope."""
    grid = [at(grid=g, agents=1) for g in (4, 8)]
    cue = at(CUE, grid=8, agents=1)
    rows = [row(c, "summary", "all", "model_bytes", "nbytes", c["states"] * 1e6) for c in grid]
    rows.append(row(cue, "summary", "all", "model_bytes", "nbytes", 5e9))
    table = fits.scaling_table(make_df(*rows))
    assert sorted(table.world) == [CUE, "grid"]
    by_world = table.set_index("world")
    assert by_world.loc["grid", "exponent_N"] == pytest.approx(1.0)
    assert pd.isna(by_world.loc[CUE, "exponent_N"])  # one size: no fit
    # The same rows given to one fit: the worlds stay apart there too.
    per_config = queries.per_config(make_df(*rows), queries.selector(*fits.SCALED[2]))
    assert fits.exponents(per_config)["states"].exponent == pytest.approx(1.0)
    assert fits.exponents(per_config)["states"].groups == 1


def test_a_grid_is_held_out_of_one_world_at_a_time():
    """One predictor per backend and world: a world's grid is predicted by that world's
    other grids only."""
    table = predictor.consumer_table(tidy(lean_jobs()))
    other = table.assign(world=CUE, config_id=table.config_id + "-cue")
    both = pd.concat([table.assign(world="grid"), other], ignore_index=True)
    errors = predictor.leave_one_grid_out(both)
    assert len(errors) == len(both)
    assert len(errors[["world", "held_out"]].drop_duplicates()) == 6
    assert errors.error.to_numpy() == pytest.approx(0.0, abs=1e-6)
    summaries = predictor.logo_summary(errors, whole=True).to_dict("records")
    assert sorted(s["backend"] for s in summaries) == ["lean", f"lean · {CUE}"]
    assert [s["grids"] for s in summaries] == [3, 3]


def test_a_claim_is_compared_with_the_grid_worlds_figure_where_one_was_measured():
    """The seed study measured a grid world: at the same grid and agents, cue-chaining's
    figure (closer to the claim) is not the one compared; alone, it is (its world named)."""
    grid, cue = at(grid=4, agents=2), at(CUE, grid=4, agents=2)
    both = make_df(
        row(grid, "summary", "all", "per_agent_bytes", "tracemalloc", 0.5e6),
        row(cue, "summary", "all", "per_agent_bytes", "tracemalloc", 0.21e6),
    )
    claim = per_agent_claim(closest={"grid": 4, "agents": 2})
    (result,) = claims.evaluate(both, [claim])
    assert result.config_id == grid["config_id"] and result.verdict == claims.REFUTED
    (alone,) = claims.evaluate(both[both.world == CUE], [claim])
    assert alone.config_id == cue["config_id"] and alone.configuration.endswith(f"world {CUE}")


# The model's arrays -----------------------------------------------------------------------


def test_per_array_rows_do_not_change_the_model_arrays_totals():
    cfg = at(CUE, grid=5, agents=1)
    sizes = {"A": 30e3, "A[0]": 20e3, "A[1]": 10e3, "B": 6e3, "B[0]": 5e3, "B[1]": 1e3,
             "C": 100.0, "D": 50.0}  # fmt: skip
    frame = make_df(*(row(cfg, "model", name, "bytes", "nbytes", v) for name, v in sizes.items()))
    arrays = queries.model_arrays(frame, cfg["config_id"])
    assert arrays == {"A": 30e3, "B": 6e3, "C": 100.0, "D": 50.0}
    assert sum(arrays.values()) == pytest.approx(36150.0)
    parts = queries.model_array_parts(frame, cfg["config_id"])
    assert parts == {"A": {"A[0]": 20e3, "A[1]": 10e3}, "B": {"B[0]": 5e3, "B[1]": 1e3}}
    assert detail._array_parts(parts["A"]) == " (A[0] 20 KB, A[1] 10 KB)"


# The whole report -------------------------------------------------------------------------


def test_a_report_of_two_worlds_names_them_and_draws_a_bar_each(tmp_path):
    """Every section is built and every figure drawn from a sweep of two worlds (model
    rows with per-array rows among them); the first screen and the breakdown name both."""
    extra = [
        row(cfg, "model", name, "bytes", "nbytes", value)
        for cfg, _ in TOTALS.values()
        for name, value in (("A", 3e3), ("A[0]", 2e3), ("A[1]", 1e3), ("B", 5e3), ("C", 10.0),
                            ("D", 10.0))
    ]  # fmt: skip
    whole = pd.concat([frame(), make_df(*extra)], ignore_index=True)
    plan = queries.configurations(whole).assign(status="run", reason=None, predicted_mb=100.0)
    _, parts = build.build(whole, plan, pd.DataFrame({"probe": []}), tmp_path)
    by_title = {p.title: p for p in parts}
    glance = " ".join(c for kind, c in by_title["At a glance"].blocks if kind == "text")
    assert "pymdp-numpy · grid: at G=10" in glance and f"pymdp-numpy · {CUE}: at G=5" in glance
    changes_titles = [p.title for p in parts if p.level == 3 and p.title.startswith("pymdp")]
    assert "pymdp-numpy · grid" in changes_titles and f"pymdp-numpy · {CUE}" in changes_titles
    assert (tmp_path / "memory_breakdown.png").exists()


def test_a_probe_blind_to_a_backend_fits_none_of_its_figures():
    """tracemalloc does not see JAX's buffers: pymdp-jax's traced peaks get no exponent,
    pymdp-numpy's do."""
    rows = []
    for backend in ("pymdp-numpy", "pymdp-jax"):
        for g in (4, 8):
            c = config(backend=backend, grid=g, agents=1)
            rows.append(row(c, "summary", "all", "peak_bytes", "tracemalloc", g * g * 1e6))
    table = fits.scaling_table(make_df(*rows))
    assert list(table.backend) == ["pymdp-numpy"]
    assert table.exponent_N.iloc[0] == pytest.approx(1.0)
