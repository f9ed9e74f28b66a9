"""The report's logic on small tables made by hand: no sweep, exact expected numbers.

:func:`make_df` builds a tidy measurement table (the columns of
``memsweep.results.schema.COLUMNS``) from a few rows; each test states the figures
it puts in and the ranks, savings, exponents and verdicts that must come out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from memsweep import agents
from memsweep.harness import probes
from memsweep.report import (
    breakdown,
    build,
    claims,
    consumers,
    figures,
    fits,
    fixes,
    hotspots,
    queries,
    sections,
    versions,
)
from memsweep.report.formats import fmt_bytes
from memsweep.results.schema import COLUMNS, to_frame

from .conftest import ROOT

SETTINGS = {
    "backend": "lean", "storage": "dense", "dtype": "float64", "grid": 3, "agents": 1,
    "sharing": "private", "policy_len": 1, "obs_noise": 0.1, "noise_kind": "local",
    "move_success": 0.9, "steps": 3, "repeats": 1, "seed": 0, "layout": "",
}  # fmt: skip


def config(**axes) -> dict:
    """One configuration's columns: the defaults above, changed where ``axes`` says."""
    settings = SETTINGS | axes
    name = "-".join(str(settings[a]) for a in ("backend", "storage", "dtype", "grid", "agents"))
    return settings | {
        "states": settings["grid"] ** 2,
        "config_id": f"{name}-{settings['sharing']}",
    }


def row(cfg: dict, phase, operation, metric, probe, value, step=None, unit="B") -> dict:
    return cfg | {
        "repeat": None if step is None else 0, "step": step, "phase": phase,
        "operation": operation, "metric": metric, "probe": probe, "value": float(value),
        "unit": unit, "status": "ok", "reason": None,
    }  # fmt: skip


def make_df(*rows: dict) -> pd.DataFrame:
    """A measurement table with every schema column (provenance left empty), in the
    types the report reads it in."""
    return to_frame(pd.DataFrame(list(rows)).reindex(columns=COLUMNS))


# Made-up configurations: two storages of lean, and pymdp-numpy beside pymdp-jax.
DENSE, CSR = config(), config(storage="csr")
NUMPY, JAX = config(backend="pymdp-numpy"), config(backend="pymdp-jax")
NUMPY_CSR = config(backend="pymdp-numpy", storage="csr")


def ranked_table() -> pd.DataFrame:
    return make_df(
        row(DENSE, "import", "total", "anon_bytes", "rss_anon", 50e6),
        row(CSR, "import", "total", "anon_bytes", "rss_anon", 40e6),
        row(DENSE, "build", "model", "growth_bytes", "rss_anon", 30e6),
        row(CSR, "build", "model", "growth_bytes", "rss_anon", 5e6),
        row(DENSE, "build", "agents", "growth_bytes", "rss_anon", 10e6),
        row(CSR, "build", "agents", "growth_bytes", "rss_anon", 2e6),
        # tracemalloc's figures are far larger: they must not move rss_anon's ranks.
        row(DENSE, "build", "agents", "growth_bytes", "tracemalloc", 900e6),
        row(CSR, "build", "agents", "growth_bytes", "tracemalloc", 300e6),
        row(DENSE, "build", "model", "growth_bytes", "tracemalloc", 10e6),
        # Below 1 % of tracemalloc's largest (9 MB): measured, but not ranked.
        row(DENSE, "import", "total", "traced_bytes", "tracemalloc", 8e6),
    )


# Ranking ------------------------------------------------------------------------------


def test_each_probe_ranks_its_own_figures():
    ranked = hotspots.rank(ranked_table())
    assert [(h.consumer.key, h.operation) for h in ranked] == [
        ("import", "total"),  # rank 1 under rss_anon, ranking probe before tracemalloc
        ("agents", "agents"),  # rank 1 under tracemalloc only
        ("model_built", "model"),  # rank 2 under both
    ]
    assert [h.ranks for h in ranked] == [
        {"rss_anon": 1},
        {"rss_anon": 3, "tracemalloc": 1},
        {"rss_anon": 2, "tracemalloc": 2},
    ]
    assert [(h.rank, h.probe) for h in ranked] == [
        (1, "rss_anon"), (1, "tracemalloc"), (2, "rss_anon")
    ]  # fmt: skip


def test_figures_of_different_probes_are_never_mixed():
    agents_hotspot = hotspots.rank(ranked_table())[1]
    assert {p: w.value for p, w in agents_hotspot.worst.items()} == {
        "tracemalloc": 900e6,
        "rss_anon": 10e6,
    }
    (fix,) = agents_hotspot.fixes
    assert fix.label() == "storage dense → csr"
    assert (fix.saving["tracemalloc"].base, fix.saving["tracemalloc"].variant) == (900e6, 300e6)
    assert (fix.saving["rss_anon"].base, fix.saving["rss_anon"].variant) == (10e6, 2e6)
    assert agents_hotspot.fix is fix
    assert fix.saving[agents_hotspot.probe].fraction == pytest.approx(600 / 900)


def test_import_is_fixed_by_the_backend_only():
    """A storage twin of the import is the probe's spread, not a saving."""
    import_hotspot = hotspots.rank(ranked_table())[0]
    assert import_hotspot.fixes == [] and import_hotspot.fix is None


def test_uss_ranks_only_without_rss_anon():
    assert hotspots.ranking_probes(ranked_table()) == ("vmhwm", "rss_anon", "tracemalloc")
    uss_only = make_df(row(DENSE, "import", "total", "resident_bytes", "psutil_uss", 1e6))
    assert hotspots.ranking_probes(uss_only) == probes.ranking()


# Fixes --------------------------------------------------------------------------------


def temporaries_table() -> pd.DataFrame:
    return make_df(
        *(
            row(cfg, "step", "infer_states", "call_peak_bytes", probe, value, step=step)
            for cfg, traced, peak in ((NUMPY, 8e6, 6e6), (JAX, 1e6, 3e6), (NUMPY_CSR, 2e6, 5e6))
            for probe, value in (("tracemalloc", traced), ("vmhwm", peak))
            for step in (0, 1)
        )
    )


def test_one_axis_fix_and_its_saving():
    (h,) = hotspots.rank(temporaries_table())
    assert (h.consumer.key, h.operation, h.probe) == ("call_temporaries", "infer_states", "vmhwm")
    savings = {f.label(): {p: s.bytes for p, s in f.saving.items()} for f in h.fixes}
    assert savings == {
        "backend pymdp-numpy → pymdp-jax": {"tracemalloc": None, "vmhwm": 3e6},
        "storage dense → csr": {"tracemalloc": 6e6, "vmhwm": 1e6},
    }
    # The switch of backend saves more (3 MB against 1 MB), but a change within the
    # backend that saves is the fix a user makes first.
    assert h.fix.label() == "storage dense → csr"
    assert h.fix.saving["vmhwm"].fraction == pytest.approx(1 / 6)


def test_a_fix_never_makes_the_whole_footprint_worse():
    """csr halves the call's temporary but raises the process's peak: it is no fix, and
    the switch of backend, which lowers both, is."""
    table = pd.concat([
        temporaries_table(),
        make_df(*(
            row(cfg, "summary", "all", "total_peak_bytes", "vmhwm", total)
            for cfg, total in ((NUMPY, 300e6), (JAX, 250e6), (NUMPY_CSR, 320e6))
        )),
    ])  # fmt: skip
    (h,) = hotspots.rank(table)
    assert h.fix.label() == "backend pymdp-numpy → pymdp-jax"


def test_no_saving_across_a_blind_backend():
    (h,) = hotspots.rank(temporaries_table())
    to_jax = next(f for f in h.fixes if f.new == "pymdp-jax")
    assert to_jax.saving["tracemalloc"].note == "tracemalloc cannot see pymdp-jax's memory"
    assert to_jax.footprint["traced"].bytes is None
    assert "pymdp-jax" in to_jax.footprint["traced"].note


def test_blind_probes_come_from_the_backends():
    for name in agents.names():
        assert fixes.blind_probes(name) == agents.get(name).blind_probes
    assert fixes.blind_probes("pymdp-jax") == ("tracemalloc",)
    # A backend in the data that is not installed here is blind to nothing.
    assert fixes.blind_probes("not-installed") == ()
    assert fixes.blind("tracemalloc", pd.Series(config(backend="not-installed"))) == ""


def test_a_figure_draws_no_line_of_a_probe_blind_to_its_backend():
    """tracemalloc's panels leave out pymdp-jax (its arrays live in XLA's buffers); a
    probe that sees every backend keeps them all."""
    table = pd.DataFrame({"backend": ["pymdp-jax", "lean", "pymdp-numpy"], "value": [1, 2, 3]})
    assert list(figures._seen_by(table, probes.TRACEMALLOC).backend) == ["lean", "pymdp-numpy"]
    assert list(figures._seen_by(table, probes.ANON).backend) == list(table.backend)


# Fits ---------------------------------------------------------------------------------


def test_fit_recovers_an_exact_power_law():
    x = np.array([2.0, 4.0, 8.0])
    fit = fits.fit_exponent(pd.DataFrame({"states": x, "value": 7 * x**2}), "states")
    assert fit.exponent == pytest.approx(2.0, abs=1e-12)
    assert fit.low == pytest.approx(2.0, abs=1e-12) and fit.high == pytest.approx(2.0, abs=1e-12)
    assert (fit.points, fit.groups, fit.dropped) == (3, 1, 0)


def test_fit_confidence_interval_is_the_t_interval_of_the_slope():
    x = np.array([10.0, 20.0, 40.0, 80.0, 160.0])
    value = 5 * x**1.5 * np.array([1.02, 0.97, 1.01, 0.99, 1.03])
    fit = fits.fit_exponent(pd.DataFrame({"states": x, "value": value, "agents": 1}), "states")
    line = stats.linregress(np.log(x), np.log(value))
    half = stats.t.ppf(0.975, len(x) - 2) * line.stderr
    assert fit.exponent == pytest.approx(line.slope)
    assert (fit.low, fit.high) == pytest.approx((line.slope - half, line.slope + half))
    assert fit.low < 1.5 < fit.high


def test_fit_drops_nonpositive_values_and_needs_two_x():
    table = pd.DataFrame({"states": [9, 16, 25], "value": [0.0, -1.0, 3.0]})
    assert fits.fit_exponent(table, "states") is None
    table = pd.DataFrame({"states": [9, 16, 25], "value": [0.0, 1.0, 3.0]})
    fit = fits.fit_exponent(table, "states")
    assert fit.dropped == 1 and fit.points == 2 and math.isnan(fit.low)
    assert fit.exponent == pytest.approx(math.log(3) / math.log(25 / 16))


def test_a_fall_of_memory_is_never_a_hotspots_worst_figure():
    """Growth of −2.9 MB per 100 steps (resolved: a fall) beside +0.8 MB (below rss_anon's
    1 MB resolution): the worst is the holding, not the release."""
    table = pd.DataFrame({"config_id": ["fell", "grew"], "value": [-2.9e6, 0.8e6],
                          "resolved": [True, False]})  # fmt: skip
    assert hotspots._worst(table).config_id == "grew"
    table.loc[1, "resolved"] = True
    assert hotspots._worst(table).config_id == "grew"


# Seed claims --------------------------------------------------------------------------


def per_agent_claim(**compare) -> dict:
    """The seed study's per-agent cost claim, compared as ``compare`` says."""
    return {
        "id": "per_agent_cost",
        "text": "Per-agent memory cost: 0.21 MB/agent",
        "value": 0.21,
        "unit": "MB",
        "compare": [
            {
                "kind": "value",
                "select": {"phase": "summary", "operation": "all", "metric": "per_agent_bytes"},
                "probes": ["tracemalloc"],
                "where": {"backend": "pymdp-numpy", "storage": "dense"},
                "scale": 1.0e-6,
                "rule": {"relative": 0.25},
                **compare,
            }
        ],
    }


def claims_table() -> pd.DataFrame:
    near = config(backend="pymdp-numpy", grid=4, agents=2)
    return make_df(
        row(near, "summary", "all", "per_agent_bytes", "tracemalloc", 0.24e6, step=0),
        row(near, "summary", "all", "per_agent_bytes", "tracemalloc", 0.26e6, step=1),
        row(NUMPY, "summary", "all", "per_agent_bytes", "tracemalloc", 0.1e6),
        row(config(grid=4, agents=2), "summary", "all", "per_agent_bytes", "tracemalloc", 5e6),
    )


def test_a_claim_within_its_tolerance_is_confirmed():
    (result,) = claims.evaluate(claims_table(), [per_agent_claim(closest={"grid": 4, "agents": 2})])
    assert result.config_id == "pymdp-numpy-dense-float64-4-2-private"
    assert result.ours == pytest.approx(0.25)  # the median of 0.24 and 0.26 MB
    assert result.spread == "0.1 – 0.25 over 2"  # lean's 5 MB is not pymdp-numpy
    assert result.verdict == claims.CONFIRMED
    assert result.why == "ours is ×1.19 the claim (within ±25%)"


def test_a_claim_outside_its_tolerance_is_refuted():
    (result,) = claims.evaluate(
        claims_table(), [per_agent_claim(closest={"grid": 4, "agents": 2}, rule={"relative": 0.1})]
    )
    assert result.verdict == claims.REFUTED
    assert result.why == "ours is ×1.19 the claim (outside ±10%)"


def sparsity_claim(size: int, value: float = 0.95) -> dict:
    """A claim about a size: A's zero fraction at "size x size"."""
    return {
        "id": "sparsity",
        "text": f"{size}x{size}: {value:.0%} sparsity",
        "value": value,
        "unit": "fraction",
        "compare": [{
            "kind": "value",
            "select": {"phase": "model", "operation": "A", "metric": "zero_fraction"},
            "probes": ["nbytes"],
            "size": size,
            "where": {"storage": "dense"},
            "rule": {"absolute": 0.02},
        }],
    }  # fmt: skip


def sparsity_table(grids=(3, 4, 5, 6)) -> pd.DataFrame:
    """A's zero fraction 1 − 5/N over the grids (N = G² states): a law of the form a + b·N^k."""
    return make_df(*(
        row(config(grid=g), "model", "A", "zero_fraction", "nbytes", 1 - 5 / g**2, unit="1")
        for g in grids
    ))  # fmt: skip


def test_a_size_is_read_as_a_grid_and_as_states():
    """ "5x5" is grid 5 (25 states, measured) and 5 states (no grid has 5: the law fitted
    over N = 9 … 36, extrapolated to 5, is 1 − 5/5 = 0)."""
    grid, states = claims.evaluate(sparsity_table(), [sparsity_claim(5, value=0.8)])
    assert (grid.reading, grid.basis) == ("5×5 grid (N=25)", claims.MEASURED)
    assert grid.ours == pytest.approx(0.8) and grid.verdict == claims.CONFIRMED
    assert (states.reading, states.basis) == ("5 states", claims.EXTRAPOLATED)
    assert states.ours == pytest.approx(0.0, abs=1e-6)
    assert states.verdict == claims.REFUTED
    assert "a + b·N^k (k = -1.00) over N = [9, 16, 25, 36], extrapolated to N = 5" in states.why
    final = claims.verdicts([grid, states], [sparsity_claim(5, value=0.8)])
    assert final.verdict.tolist() == ["confirmed as 5×5 grid (N=25)"]
    assert final["by reading"].iloc[0] == "5×5 grid (N=25): confirmed; 5 states: refuted"


def test_a_size_between_the_measured_ones_is_interpolated():
    (grid, states) = claims.evaluate(sparsity_table((3, 4, 6, 7)), [sparsity_claim(5, 0.8)])
    assert grid.basis == claims.INTERPOLATED and grid.ours == pytest.approx(0.8, abs=1e-6)
    assert grid.config_id is None and "grids 3, 4, 6, 7" in grid.configuration


def test_too_few_sizes_for_a_law_is_not_comparable_and_says_why():
    rows = claims.evaluate(sparsity_table((3, 4)), [sparsity_claim(5)])
    assert [r.verdict for r in rows] == [claims.NOT_COMPARABLE] * 2
    assert rows[0].why == (
        "no configuration has N=25 states, and its slice has 2 size(s) (N=[9, 16]) "
        "for a law that needs 3"
    )
    final = claims.verdicts(rows, [sparsity_claim(5)])
    assert final.verdict.tolist() == [claims.NOT_COMPARABLE]


def test_the_primary_probe_decides_and_a_disagreeing_probe_is_shown():
    claim = per_agent_claim(closest={"grid": 4, "agents": 2}, probes=["tracemalloc", "rss_anon"])
    near = config(backend="pymdp-numpy", grid=4, agents=2)
    frame = make_df(
        row(near, "summary", "all", "per_agent_bytes", "tracemalloc", 0.21e6),
        row(near, "summary", "all", "per_agent_bytes", "rss_anon", 3e6),
    )
    rows = claims.evaluate(frame, [claim])
    assert [(r.probe, r.verdict) for r in rows] == [
        ("tracemalloc", claims.CONFIRMED), ("rss_anon", claims.REFUTED)
    ]  # fmt: skip
    final = claims.verdicts(rows, [claim]).iloc[0]
    assert (final.verdict, final["primary probe"]) == (claims.CONFIRMED, "tracemalloc")
    assert final.disagreeing == "rss_anon refuted (—)"


# From the registries ------------------------------------------------------------------

# The consumer catalogue as it was typed by hand before the probe registry.
HAND_KEPT = {
    "model_built": {"tracemalloc": "growth_bytes", "rss_anon": "growth_bytes",
                    "psutil_uss": "growth_bytes", "vmhwm": "call_peak_bytes"},
    "agents": {"tracemalloc": "growth_bytes", "rss_anon": "growth_bytes",
               "psutil_uss": "growth_bytes", "vmhwm": "call_peak_bytes"},
    "call_temporaries": {"tracemalloc": "call_peak_bytes", "vmhwm": "call_peak_bytes"},
    "first_call": {"tracemalloc": "call_peak_bytes", "vmhwm": "call_peak_bytes"},
    "import": {"tracemalloc": "traced_bytes", "rss_anon": "anon_bytes",
               "psutil_uss": "resident_bytes"},
    "growth": {"tracemalloc": "traced_steady_growth_per_100_steps_bytes",
               "rss_anon": "anon_steady_growth_per_100_steps_bytes",
               "psutil_uss": "resident_steady_growth_per_100_steps_bytes"},
    "retained": {"tracemalloc": "retained_bytes", "rss_anon": "retained_bytes",
                 "psutil_uss": "retained_bytes"},
}  # fmt: skip


def test_consumer_metrics_come_from_the_probe_registry():
    assert {c.key: c.metrics for c in consumers.CONSUMERS} == HAND_KEPT


def test_figure_probes_come_from_the_probe_registry():
    assert figures.PEAK_PROBES == ("tracemalloc", "vmhwm")
    assert figures.LEVEL_PROBES == {
        "tracemalloc": "traced_bytes", "rss_anon": "anon_bytes", "psutil_uss": "resident_bytes"
    }  # fmt: skip


def test_snakemake_figure_captions_are_rendered_from_the_registry():
    committed = (ROOT / "workflow/report/figures.rst").read_text()
    assert committed == figures.rst(), f"rewrite it: {figures.RST_COMMAND}"
    for name, entry in figures.REGISTRY.items():
        assert f'snakemake.wildcards.name == "{name}"' in committed
        assert entry.caption in committed


# The whole report on a made-up table -------------------------------------------------


def test_sections_come_in_order_and_say_what_each_probe_sees(tmp_path):
    frame = ranked_table()
    plan = queries.configurations(frame).assign(status="run", reason=None, predicted_mb=100.0)
    title, parts = build.build(frame, plan, pd.DataFrame({"probe": []}), tmp_path)
    top = [p.title for p in parts if p.level == 2]
    assert top == [
        "At a glance", "Memory needed", "Where the memory goes", "Changes a user would make",
        "Summary", "Hotspots ranked by measured bytes", "The top 3 hotspots in detail",
        "Where the bytes are: allocation sites", "Scaling",
        "Predicted against measured memory",
        "Precision against memory", "Memory over steps", "Seed study claims",
        "Configurations not measured",
        "Probe calibration on this machine", "Provenance",
        "Where the numbers at a glance come from", "Appendix: how to read the figures",
    ]  # fmt: skip
    assert len(sections.SECTIONS) == len(top) + 1  # one release: no 'Across PyMDP releases'
    details = [p.title for p in parts if p.level == 3 and p.title[0].isdigit()]
    assert details[0] == f"1. {hotspots.rank(frame)[0].what}"
    # The probes' semantics are the appendix, at the end: the first screen is the glance.
    prose = " ".join(content for kind, content in parts[-1].blocks if kind == "text")
    for name in probes.ranking():
        assert f"{name}: {probes.REGISTRY[name].sees}." in prose
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        f"{name}.png" for name in figures.REGISTRY
    )


def test_the_failure_section_lists_the_files_the_aggregate_could_not_read():
    frame = ranked_table()
    plan = queries.configurations(frame).assign(status="run", reason=None, predicted_mb=100.0)
    path = "results/measurements/backend=lean/storage=csr/dtype=float32/grid=4/policy_len=1.parquet"
    aggregate_failures = pd.DataFrame(
        [{"backend": "lean", "config_id": "abc", "status": "invalid", "path": path,
          "reason": "invalid measurement file: not a readable Parquet file"}]
    )  # fmt: skip
    context = sections.Context(
        frame=frame, plan=plan, calibration=pd.DataFrame(), ranked=[],
        prediction=pd.DataFrame(), figures={}, failures=aggregate_failures,
    )  # fmt: skip
    section = sections.failures(context)
    tables = [content.frame for kind, content in section.blocks if kind == "table"]
    one_by_one = tables[-1]
    assert list(one_by_one.path) == [path]
    assert list(one_by_one.status) == ["invalid"]
    # Without the aggregate's table, only what the measurements show: nothing failed here.
    context.failures = None
    assert sections.failures(context).blocks[0] == ("text", sections.text.ALL_MEASURED)


# Peaks as peaks -------------------------------------------------------------------------
def test_a_per_call_peak_is_its_maximum_over_steps_and_a_time_its_median():
    from memsweep.report.queries import per_config

    peaks = [0, 0, 9e6, 0, 0]  # a temporary that one step of five makes
    times = [1.0, 1.0, 5.0, 1.0, 1.0]
    frame = make_df(
        *(row(JAX, "step", "step", "call_peak_bytes", "vmhwm", v, step=i)
          for i, v in enumerate(peaks)),
        *(row(JAX, "step", "step", "call_seconds", "perf_counter", v, step=i, unit="s")
          for i, v in enumerate(times)),
    )  # fmt: skip
    peak = per_config(frame, {"phase": "step", "operation": "step", "metric": "call_peak_bytes",
                              "probe": "vmhwm"}).iloc[0]  # fmt: skip
    assert (peak.value, peak["median"], peak.rows) == (9e6, 0, 5)
    assert peak.p95 == pytest.approx(np.quantile(peaks, 0.95))
    time = per_config(frame, {"phase": "step", "operation": "step", "metric": "call_seconds",
                              "probe": "perf_counter"}).iloc[0]  # fmt: skip
    assert time.value == 1.0


# Across PyMDP releases ------------------------------------------------------------------


def _released(cfg: dict, version: str, total: float) -> dict:
    found = row(cfg, "summary", "all", "total_peak_bytes", "vmhwm", total)
    return found | {"pymdp_version": version, "config_id": f"{cfg['config_id']}-{version}"}


def test_a_sweep_of_two_releases_gets_them_side_by_side_and_its_regressions():
    grew, same = config(grid=4), config(grid=5)
    frame = make_df(
        _released(grew, "1.0.0", 100e6), _released(grew, "1.0.4", 120e6),  # +20 %: regressed
        _released(same, "1.0.0", 50e6), _released(same, "1.0.4", 50.5e6),  # +1 %: unchanged
    )  # fmt: skip
    section = versions.across_versions(frame, {"vmhwm": 1e6})
    assert section.title == "Across PyMDP releases"
    (lean, found) = section.subsections
    side = lean.blocks[0][1].frame
    assert list(side["total_peak_bytes [vmhwm] 1.0.0"]) == [100e6, 50e6]
    assert list(side["total_peak_bytes [vmhwm] 1.0.4"]) == [120e6, 50.5e6]
    assert found.title == "1.0.0 → 1.0.4: 1 figure(s) regressed"
    regressed = found.blocks[1][1].frame
    assert regressed.label.tolist() == ["lean · dense · float64 · G=4 · 1 agent · private"]
    assert regressed.ratio.tolist() == [pytest.approx(1.2)]


def test_a_sweep_of_one_release_has_no_such_section(tmp_path):
    frame = ranked_table().assign(pymdp_version="1.0.4")
    assert versions.across_versions(frame, None) is None
    plan = queries.configurations(frame).assign(status="run", reason=None, predicted_mb=100.0)
    _, parts = build.build(frame, plan, pd.DataFrame({"probe": []}), tmp_path)
    assert "Across PyMDP releases" not in [p.title for p in parts]


# Where the memory goes ------------------------------------------------------------------


def test_the_parts_of_the_peak_add_up_to_it_and_the_rest_is_shown():
    """Baseline 100 + model 10 + agents 60 of a 180 MB peak: the rest is 10 MB (the calls),
    every part by vmhwm; the steps' per-call peak is beside, not added."""
    base = config(grid=8, agents=4)
    frame = make_df(
        row(base, "summary", "all", "total_peak_bytes", "vmhwm", 180e6),
        row(base, "summary", "all", "baseline_bytes", "vmhwm", 100e6),
        row(base, "build", "model", "call_peak_bytes", "vmhwm", 10e6),
        row(base, "build", "agents", "call_peak_bytes", "vmhwm", 60e6),
        row(base, "step", "infer_states", "call_peak_bytes", "vmhwm", 25e6, step=1),
        row(base, "step", "infer_states", "call_peak_bytes", "vmhwm", 0.5e6, step=2),
    )
    chosen, table = breakdown.parts(queries.Tables(frame, {"vmhwm": 1e6}), "lean")
    assert chosen.config_id == base["config_id"]
    added = table[table.added]
    assert list(added.part) == ["fixed cost", "model", "agents", "the rest"]
    assert list(added.bytes) == [100e6, 10e6, 60e6, pytest.approx(10e6)]
    assert added.bytes.sum() == pytest.approx(180e6)
    beside = table.set_index("part").loc["beside: per-call temporaries"]
    assert (beside.bytes, beside.added) == (25e6, False)  # the maximum over the steps
    assert list(breakdown.stacked(queries.Tables(frame)).loc["lean"]) == [
        100,
        10,
        60,
        pytest.approx(10),
    ]


def test_memory_over_steps_shows_jumps_apart_from_steady_growth():
    """At the largest grid and agent count: each probe's jumps and steady slope, USS left
    out; a figure under the probe's resolution is shown as "< 1 MB"."""
    big, small = config(grid=8, agents=4), config(grid=4, agents=4)
    frame = make_df(
        row(big, "growth", "step", "anon_jump_bytes", "rss_anon", 24e6),
        row(big, "growth", "step", "anon_steady_growth_per_100_steps_bytes", "rss_anon", 2e5),
        row(big, "growth", "step", "resident_jump_bytes", "psutil_uss", 30e6),
        row(small, "growth", "step", "anon_jump_bytes", "rss_anon", 1e6),
    )
    table = sections.steady_growth(frame, {"rss_anon": 1e6})
    assert list(table.columns) == [
        "configuration", "anon_jump_bytes [rss_anon]",
        "anon_steady_growth_per_100_steps_bytes [rss_anon]",
    ]  # fmt: skip
    assert table.configuration.tolist() == ["lean · dense · float64 · G=8 · 4 agents · private"]
    assert [fmt_bytes(v) for v in table.iloc[0, 1:]] == ["24 MB", "< 1 MB"]


def test_the_figures_drawn_beside_raise_the_childs_error(tmp_path):
    """The figures are drawn in a child process while the sections are built: its paths
    are known at once, and a drawing that fails fails the report, with the child's
    error, never a report whose figures are missing."""
    with (
        pytest.raises(RuntimeError, match="drawing the figures failed"),
        figures.drawn_beside(None, None, tmp_path / "figures") as drawn,
    ):
        assert set(drawn) == set(figures.REGISTRY)
    assert not any((tmp_path / "figures").glob("*.png"))
