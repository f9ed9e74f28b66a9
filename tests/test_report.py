"""The hotspot report, made by the real workflow from a small real sweep.

One session fixture runs Snakemake on a small config in a temporary copy of the
workflow (12 measured jobs, one backend/storage pair unsupported) and keeps the
results; the tests recompute the report's figures from measurements.parquet
independently and check the Markdown, the HTML and Snakemake's own report.
"""

from __future__ import annotations

import html as html_module
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from memsweep.harness import calibration, probes
from memsweep.report import build as report
from memsweep.report import claims, figures, fits, fixes, hotspots, pareto, queries, text
from memsweep.report.formats import fmt_bytes

from .conftest import ROOT
from .test_report_units import per_agent_claim
from .test_workflow import copy_workflow, snakemake, write_config

pytestmark = pytest.mark.workflow

SMALL = {
    "sweep": {
        "backend": ["pymdp-numpy", "lean"],
        "storage": ["dense", "csr"],
        "dtype": ["float64"],
        "grid": [3, 4],
        "agents": [1, 2],
        "sharing": ["private"],
        "policy_len": [1],
    },
    "model": {
        "obs_noise": 0.1,
        "noise_kind": "local",
        "move_success": 0.9,
        "steps": 3,
        "repeats": 1,
        "seed": 0,
    },
    "budget": {"max_job_mb": 4000},
}
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """The small sweep, run once by the real Snakemake, report included."""
    workdir = copy_workflow(tmp_path_factory.mktemp("report-workflow"))
    write_config(workdir, SMALL)
    snakemake(workdir, timeout=1200)
    return workdir


@pytest.fixture(scope="session")
def data(workdir):
    results = workdir / "results"
    return {
        "frame": pd.read_parquet(results / "measurements.parquet"),
        "plan": pd.read_parquet(results / "sweep/plan.parquet"),
        "calibration": pd.read_parquet(results / "calibration.parquet"),
    }


@pytest.fixture(scope="session")
def ranked(data):
    # As the report ranks: figures below their probe's calibrated resolution rank nothing.
    resolution = calibration.resolution(data["calibration"])
    return hotspots.rank(data["frame"], data["plan"], resolution)


def _median(frame, config_id, phase, operation, metric, probe) -> float:
    """A figure straight from the rows, without the package's selection code: a peak's
    maximum over steps and repeats (a temporary some steps make is not lost to a median
    of zeros), any other figure's median."""
    chosen = frame[
        (frame.config_id == config_id)
        & (frame.phase == phase)
        & (frame.metric == metric)
        & (frame.probe == probe)
        & (frame.status == "ok")
    ]
    if operation is not None:
        chosen = chosen[chosen.operation == operation]
    assert len(chosen), (config_id, phase, operation, metric, probe)
    if metric.endswith("peak_bytes"):
        return float(np.max(chosen.value))
    return float(np.median(chosen.value))


def _is_png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


# Outputs ------------------------------------------------------------------------------


def test_rule_writes_markdown_html_and_every_figure(workdir, data):
    out = workdir / "results/report"
    assert (out / "hotspots.md").stat().st_size > 0
    assert (out / "hotspots.html").stat().st_size > 0
    pngs = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert pngs == sorted(figures.REGISTRY)
    for name in figures.REGISTRY:
        width, height = _is_png(out / "figures" / f"{name}.png")
        assert width > 100 and height > 100
    markdown = (out / "hotspots.md").read_text()
    for name in figures.REGISTRY:
        assert f"(figures/{name}.png)" in markdown
        # In the words of this sweep: it measured private models only.
        assert figures.caption(name, data["frame"]) in markdown
    assert "private models only" in figures.caption("memory_vs_agents", data["frame"])
    assert "private against shared" not in markdown


def test_snakemake_report_includes_the_figures(workdir):
    snakemake(workdir, "--report", "snakemake-report.html")
    page = (workdir / "snakemake-report.html").read_text(errors="replace")
    assert len(page) > 10_000
    for name in figures.REGISTRY:
        assert name in page


# Hotspots trace to rows --------------------------------------------------------------


def test_every_hotspot_figure_is_the_summary_of_its_rows(data, ranked):
    frame = data["frame"]
    assert ranked, "the small sweep has hotspots"
    for h in ranked:
        for probe, worst in h.worst.items():
            sel = h.selectors[probe]
            recomputed = _median(frame, worst.config_id, sel["phase"], sel["operation"],
                                 sel["metric"], probe)  # fmt: skip
            assert worst.value == pytest.approx(recomputed)
            assert worst.rows == len(queries.rows(frame[frame.config_id == worst.config_id], sel))
            # ...and it is the largest such median over every configuration, or one within
            # the probe's resolution of it (a tie goes to the base of the fixes).
            others = [
                _median(frame, cid, sel["phase"], sel["operation"], sel["metric"], probe)
                for cid in frame.config_id.unique()
                if len(queries.rows(frame[frame.config_id == cid], sel))
            ]
            largest, margin = np.nanmax(others), worst.get("resolution") or 0.0
            assert largest - margin <= worst.value <= largest * (1 + 1e-9)


def test_ranks_order_each_probe_by_bytes(ranked):
    for probe in probes.ranking():
        ordered = sorted((h.ranks[probe], h.worst[probe].value) for h in ranked if probe in h.ranks)
        values = [value for _, value in ordered]
        assert values == sorted(values, reverse=True)
        assert [r for r, _ in ordered] == list(range(1, len(ordered) + 1))
    assert [h.rank for h in ranked] == sorted(h.rank for h in ranked)


def test_fix_savings_are_differences_of_measured_rows(data, ranked):
    frame = data["frame"]
    config = frame.drop_duplicates("config_id").set_index("config_id")
    checked = 0
    for h in ranked:
        base = config.loc[h.base.config_id]
        for fix in h.fixes:
            variant = config.loc[fix.variant]
            differs = [c for c in queries.CONFIG[1:] if c != "states" and base[c] != variant[c]]
            assert differs == [fix.axis], differs
            for probe, saving in fix.saving.items():
                if saving.bytes is None or saving.note:
                    continue
                sel = h.selectors[probe]
                args = (sel["phase"], sel["operation"], sel["metric"], probe)
                expected = _median(frame, h.base.config_id, *args) - _median(
                    frame, fix.variant, *args
                )
                assert saving.bytes == pytest.approx(expected)
                checked += 1
            resident = fix.footprint["resident"]
            if resident.bytes is not None:
                total = {
                    cid: _median(frame, cid, "summary", "all", "total_peak_bytes", "vmhwm")
                    for cid in (h.base.config_id, fix.variant)
                }
                assert resident.bytes == pytest.approx(total[h.base.config_id] - total[fix.variant])
            seconds = [
                _median(frame, cid, "summary", "all", "step_seconds", "perf_counter")
                for cid in (h.base.config_id, fix.variant)
            ]
            assert fix.step_seconds == pytest.approx(tuple(seconds))
    assert checked, "at least one fix was checked against the rows"


def test_dense_to_csr_is_a_one_axis_neighbour_that_saves(data):
    """lean runs both storages: a dense lean configuration has its csr twin as a fix."""
    frame = data["frame"]
    configs = queries.configurations(frame)
    dense = configs[(configs.backend == "lean") & (configs.storage == "dense")]
    base = dense.sort_values(["grid", "agents"]).iloc[-1]
    near = fixes.neighbours(configs, base)
    twin = near[near["axis"] == "storage"]
    assert list(twin.storage) == ["csr"]
    fix = fixes.fix(queries.Tables(frame), {"nbytes": queries.selector(
        "summary", "all", "model_bytes", "nbytes")}, base, twin.iloc[0])  # fmt: skip
    dense_bytes = _median(frame, base.config_id, "summary", "all", "model_bytes", "nbytes")
    csr_bytes = _median(frame, twin.config_id.iloc[0], "summary", "all", "model_bytes", "nbytes")
    assert fix.saving["nbytes"].bytes == pytest.approx(dense_bytes - csr_bytes)
    assert csr_bytes < dense_bytes


def test_markdown_shows_the_top_hotspots_figures(workdir, ranked):
    markdown = (workdir / "results/report/hotspots.md").read_text()
    for position, h in enumerate(ranked[: text.TOP], start=1):
        assert f"### {position}. {h.what}" in markdown
        for probe, worst in h.worst.items():
            shown = html_module.escape(fmt_bytes(queries.figure(worst)), quote=False)  # "&lt; 1 MB"
            assert f"{probe}: {shown}" in markdown
            assert worst.config_id in markdown
    assert "## Probe calibration on this machine" in markdown
    assert "## Provenance" in markdown


def test_scaling_exponent_matches_an_independent_fit(data):
    """Dense model bytes: A (N×N) and B (N×N×5) dominate, C and D are vectors."""
    table = fits.scaling_table(data["frame"])
    row = table[
        (table.backend == "lean")
        & (table.storage == "dense")
        & (table.quantity == "model_bytes [nbytes]")
    ].iloc[0]
    frame = data["frame"]
    chosen = frame[
        (frame.backend == "lean") & (frame.storage == "dense") & (frame.phase == "summary")
        & (frame.metric == "model_bytes") & (frame.agents == 1)
    ]  # fmt: skip
    slope = np.polyfit(np.log(chosen.states), np.log(chosen.value), 1)[0]
    assert row.exponent_N == pytest.approx(slope, abs=1e-3)
    assert 1.8 < slope < 2.0  # N² arrays plus O(N) vectors


# The first screen ------------------------------------------------------------------------


def test_the_report_opens_with_each_backends_largest_configuration(workdir, data):
    """Title, then per backend its base configuration (the largest grid, then agent count;
    of those, the one with the most one-setting variants measured, then the largest
    footprint) with its footprint as the rows give it, then the table of the memory every
    configuration needs."""
    frame = data["frame"]
    markdown = (workdir / "results/report/hotspots.md").read_text()
    head = markdown.split("\n## ")
    assert head[0].startswith("# ") and head[1].startswith("At a glance")
    assert head[2].startswith("Memory needed")
    configs = frame.drop_duplicates("config_id").set_index("config_id")
    choices = ["sharing", "dtype", "storage", "policy_len"]
    for backend in sorted(configs.backend.unique()):
        own = configs[configs.backend == backend]
        own = own[own.grid == own.grid.max()]
        own = own[own.agents == own.agents.max()]

        def variants(cid, own=own):
            differ = sum((own[c] != own.loc[cid, c]).astype(int) for c in choices)
            return int((differ == 1).sum())

        totals = {
            cid: _median(frame, cid, "summary", "all", "total_peak_bytes", "vmhwm")
            for cid in own.index
        }
        base = max(totals, key=lambda cid: (variants(cid), totals[cid]))
        grid, agents = configs.loc[base, ["grid", "agents"]]
        said = next(p for p in head[1].split("\n\n") if p.startswith(f"{backend}:"))
        assert f"at G={grid} with {agents} " in said
        assert f"peaks at {fmt_bytes(totals[base])} (total_peak_bytes [vmhwm]" in said
    table = head[2].split("\n\n")[2].splitlines()[2:]
    assert len(table) == len(configs)
    for line in table:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        config_id, total = cells[1], cells[2]
        expected = _median(frame, config_id, "summary", "all", "total_peak_bytes", "vmhwm")
        assert total == html_module.escape(fmt_bytes(expected), quote=False)
        assert cells[0].startswith(f"{configs.loc[config_id, 'backend']} · ")


# Seed claims ---------------------------------------------------------------------------


def test_every_seed_claim_has_a_verdict(workdir, data):
    listed = claims.load()
    source = yaml.safe_load((ROOT / "src/memsweep/report/data/seed_claims.yaml").read_text())
    assert [c["id"] for c in listed] == [c["id"] for c in source["claims"]]
    rows = claims.evaluate(data["frame"])
    assert {r.claim for r in rows} == {c["id"] for c in listed}
    for row in rows:
        assert row.verdict in (claims.CONFIRMED, claims.REFUTED, claims.NOT_COMPARABLE)
        assert row.why
        if row.verdict != claims.NOT_COMPARABLE:
            assert row.ours is not None and row.config_id
    markdown = (workdir / "results/report/hotspots.md").read_text()
    section = markdown.split("## Seed study claims")[1].split("\n## ")[0]
    for claim in listed:
        assert claim["id"] in section


def test_a_claim_figure_is_the_median_of_its_rows(data):
    frame = data["frame"]
    largest = int(frame.grid.max())
    (row,) = claims.evaluate(frame, [per_agent_claim(closest={"grid": largest, "agents": 2})])
    assert row.verdict != claims.NOT_COMPARABLE
    chosen = frame[frame.config_id == row.config_id].iloc[0]
    assert (chosen.grid, chosen.agents, chosen.backend) == (largest, 2, "pymdp-numpy")
    expected = _median(frame, row.config_id, "summary", "all", "per_agent_bytes", "tracemalloc")
    assert row.ours == pytest.approx(expected * 1e-6)
    assert row.verdict == (claims.CONFIRMED if abs(row.ours - 0.21) <= 0.25 * 0.21
                           else claims.REFUTED)  # fmt: skip


def test_a_claim_for_another_grid_is_not_comparable(data):
    """The yaml's `exact`: a per-agent figure at grid 4 says nothing about grid 20."""
    compare = {"closest": {"grid": 20, "agents": 2}, "exact": ["grid"]}
    (row,) = claims.evaluate(data["frame"], [per_agent_claim(**compare)])
    assert row.verdict == claims.NOT_COMPARABLE
    assert "grid=20" in row.why and f"grid={int(data['frame'].grid.max())}" in row.why


def test_claims_without_measured_configuration_are_not_comparable(data):
    """The small sweep has two grids: no 20×20 or 50×50 grid, no 20 or 50 states, and too
    few sizes for a law to reach them, so those claims cannot be judged."""
    rows = claims.evaluate(data["frame"])
    sizes = sorted(int(n) for n in data["frame"].states.unique())
    assert len(sizes) < claims.LAW_POINTS
    for claim in ("sparsity_20", "sparsity_50", "sparse_saving_50"):
        for row in (r for r in rows if r.claim == claim):
            assert row.verdict == claims.NOT_COMPARABLE
            assert row.why.startswith("no configuration has N=") or row.why.startswith(
                "no measured configuration"
            ), row.why
            assert f"for a law that needs {claims.LAW_POINTS}" in row.why or (
                "no measured configuration" in row.why
            )


@pytest.mark.parametrize(
    ("ours", "claimed", "rule", "verdict"),
    [
        (0.26, 0.25, {"relative": 0.1}, True),
        (0.5, 0.25, {"relative": 0.1}, False),
        (0.9, 0.883, {"absolute": 0.05}, True),
        (0.0, 0.883, {"absolute": 0.05}, False),
        (7.7, 34.5, {"below": True}, True),
        (40.0, 34.5, {"below": True}, False),
        (1e-9, None, {"at_most": 1e-3}, True),
        (0.9, None, {"at_least": 1.0}, False),
    ],
)
def test_tolerance_rules(ours, claimed, rule, verdict):
    assert claims._judge(ours, claimed, rule)[0] is verdict


# Fits and fronts --------------------------------------------------------------------


def test_fit_recovers_a_power_law_with_per_group_intercepts():
    n = np.array([25, 100, 400, 25, 100, 400], float)
    agents = np.array([1, 1, 1, 10, 10, 10])
    rng = np.random.default_rng(0)
    value = 3.0 * agents * n**1.5 * np.exp(rng.normal(0, 0.01, len(n)))
    fit = fits.fit_exponent(
        pd.DataFrame({"states": n, "agents": agents, "value": value}), "states", ["agents"]
    )
    assert fit.points == 6 and fit.groups == 2
    assert fit.low < 1.5 < fit.high and abs(fit.exponent - 1.5) < 0.02


@pytest.mark.parametrize(
    ("a", "b", "k"),
    [(3e7, 80.0, 2.0), (1.0, -5.0, -1.0), (-5e5, 1e3, 1.5), (2e6, 4e5, 0.5)],
)
def test_law_recovers_its_parameters_on_either_side_of_zero(a, b, k):
    """A floor plus a power, with exponents of both signs (the cost has a basin on each
    side of k = 0): the fit finds the law that made the points, to rounding."""
    x = np.array([25, 100, 225, 400, 900], float)
    law = fits.fit_law(x, a + b * x**k)
    assert law.k == pytest.approx(k, abs=1e-6)
    assert law.a == pytest.approx(a, rel=1e-6, abs=1e-6)
    assert law.b == pytest.approx(b, rel=1e-6)


def test_law_interval_is_scipys_and_covers_the_truth():
    """On noisy points the fit's minimum and its exponent's interval agree with scipy's
    general least squares (curve_fit, started at the truth), and the interval holds the
    exponent that made the points."""
    from scipy import optimize

    x = np.array([25, 100, 225, 400, 625, 900], float)
    noise = np.random.default_rng(1).normal(0, 0.01, len(x))
    y = (3e7 + 80 * x**2) * (1 + noise)
    law = fits.fit_law(x, y)
    found, covariance = optimize.curve_fit(
        lambda n, a, b, k: a + b * n**k, x, y, p0=[3e7, 80, 2], method="trf", jac="3-point"
    )
    assert law.k == pytest.approx(found[2], abs=1e-4)
    low, high = law.k_interval()
    assert low < 2.0 < high
    assert high - low == pytest.approx(2 * law.t * np.sqrt(covariance[2, 2]), rel=0.05)


def test_law_needs_three_distinct_sizes():
    assert fits.fit_law([25, 25, 100, 100], [1.0, 1.0, 2.0, 2.0]) is None
    assert fits.fit_law([25, 100, 400], [1.0, 2.0, 5.0]).k_interval() == (
        pytest.approx(np.nan, nan_ok=True),
        pytest.approx(np.nan, nan_ok=True),
    )


def test_pareto_front_keeps_only_undominated_points():
    points = pd.DataFrame({"mb": [1, 2, 3, 4], "error": [0.5, 0.1, 0.2, 0.0]})
    front = pareto.pareto(points, "mb", "error")
    assert list(front.mb) == [1, 2, 4]


# HTML ---------------------------------------------------------------------------------


def test_html_is_offline_and_sortable(workdir):
    page = (workdir / "results/report/hotspots.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert page.count("<script>") == 1  # the sorter, inline
    assert 'class="sortable"' in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(figures.REGISTRY)


def test_html_escapes_strings_from_the_data(workdir, data, tmp_path):
    """A reason from the plan and one from a failed measurement carry markup: both are
    shown as text, never run, in the HTML and in the Markdown."""
    plan = data["plan"].copy()
    unsupported = plan.index[plan.status == "unsupported"][0]
    plan.loc[unsupported, "reason"] = f"plan says {XSS}"
    frame = data["frame"]
    failed = frame.iloc[[0]].assign(
        status="failed", phase="failure", reason=f"worker says {XSS}", config_id="failedconfig"
    )
    frame = pd.concat([frame, failed], ignore_index=True)
    paths = {name: tmp_path / f"{name}.parquet" for name in ("frame", "plan", "calibration")}
    frame.to_parquet(paths["frame"])
    plan.to_parquet(paths["plan"])
    data["calibration"].to_parquet(paths["calibration"])
    out = tmp_path / "report"
    report.write(paths["frame"], paths["plan"], paths["calibration"], out / "hotspots.md",
                 out / "hotspots.html")  # fmt: skip
    page = (out / "hotspots.html").read_text()
    assert XSS not in page
    escaped = html_module.escape(XSS)
    assert f"plan says {escaped}" in page
    assert f"worker says {escaped}" in page
    assert page.count("<script>") == 1
    # Markdown passes raw HTML through to whatever renders it: escaped there too.
    markdown = (out / "hotspots.md").read_text()
    assert XSS not in markdown and f"plan says {escaped}" in markdown
    shutil.rmtree(out)
