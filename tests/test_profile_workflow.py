"""The deep profiles in the real Snakemake, on the tiny sweep: after the aggregate, the
checkpoint picks each backend's largest configuration, each is profiled under memray, the
report links its flame graph, and a second run profiles nothing."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pytest

from memsweep.harness import probes
from memsweep.results import schema

from .test_workflow import TINY, copy_workflow, planned, snakemake, write_config

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("profiles"))
    write_config(workdir, TINY)
    snakemake(workdir)
    return workdir


def targets(workdir: Path) -> list[str]:
    return (workdir / "results/profiles/targets.txt").read_text().split()


def flamegraph(workdir: Path, path: str) -> Path:
    return workdir / (path.removesuffix(".parquet") + ".html")


def test_each_backend_profiles_its_largest_peak(workdir):
    frame = pd.read_parquet(workdir / "results/measurements.parquet")
    peaks = frame[(frame.phase == "summary") & (frame.metric == "peak_bytes")
                  & (frame.probe == probes.VMHWM) & (frame.status == "ok")]  # fmt: skip
    chosen = [schema.read_frame(workdir / path).config_id.iloc[0] for path in targets(workdir)]
    picked = peaks.set_index("config_id").loc[chosen]
    assert sorted(picked.backend) == sorted(TINY["sweep"]["backend"])
    for row in picked.itertuples():  # the largest of its backend (a tie: either)
        assert row.value == peaks[peaks.backend == row.backend].value.max()


def test_every_profile_has_its_rows_and_its_flame_graph(workdir):
    for path in targets(workdir):
        rows = schema.read_frame(workdir / path)
        assert set(rows.status) == {"ok"} and set(rows.probe) == {probes.MEMRAY}
        assert (rows[rows.metric == "alive_bytes"].site.notna()).all()
        assert flamegraph(workdir, path).stat().st_size


def test_the_report_links_each_flame_graph(workdir):
    report = workdir / "results/report"
    markdown = (report / "hotspots.md").read_text()
    page = (report / "hotspots.html").read_text()
    linked = re.findall(r"\]\(([^)]+\.html)\)", markdown)
    assert sorted(linked) == sorted(re.findall(r'<a href="([^"]+\.html)">', page))
    expected = {flamegraph(workdir, path).resolve() for path in targets(workdir)}
    assert {(report / link).resolve() for link in linked} == expected
    for path in targets(workdir):  # the profile's top site is listed beside its link
        top = schema.read_frame(workdir / path).dropna(subset=["site"]).site.iloc[0]
        assert html.escape(top, quote=False) in markdown


def test_a_second_run_profiles_nothing(workdir):
    assert planned(workdir) == {}
