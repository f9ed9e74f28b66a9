"""The hotspot report: results/measurements.parquet (+ plan, calibration) -> Markdown,
HTML and figures.

The report is built once as a list of sections (:mod:`memsweep.report.sections`, in
order); :mod:`memsweep.report.markdown` and :mod:`memsweep.report.page` render the
same sections, so the two files never say different things. Every figure in them is
computed from the tables; nothing is typed by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from memsweep.report import figures, hotspots, markdown, page, text
from memsweep.report.document import Section
from memsweep.report.prediction import prediction_table
from memsweep.report.sections import SECTIONS, Context


def build(frame, plan, calibration, figure_dir, failures=None) -> tuple[str, list[Section]]:
    """The report's title and sections; writes the figures into ``figure_dir``.

    ``failures`` is the aggregate's failures table (it alone knows the files it could not
    read); without it the report lists what the measurements and the plan show.
    """
    prediction = prediction_table(frame, plan) if not plan.empty else pd.DataFrame()
    context = Context(
        frame=frame,
        plan=plan,
        calibration=calibration,
        ranked=hotspots.rank(frame, plan),
        prediction=prediction,
        figures=figures.write_all(frame, prediction, figure_dir),
        failures=failures,
    )
    return text.TITLE, [part for section in SECTIONS for part in section(context).flat()]


def write(
    measurements, plan, calibration, out_markdown, out_html=None, figure_dir=None, failures=None
) -> None:
    """Read the tables, build the report, write Markdown (and HTML) and the figures.

    ``failures``: the aggregate's ``failures.csv``, which lists unreadable files too.
    """
    frame = pd.read_parquet(measurements)
    plan_frame = pd.read_parquet(plan)
    calibration_frame = pd.read_parquet(calibration)
    out_markdown = Path(out_markdown)
    figure_dir = Path(figure_dir) if figure_dir else out_markdown.parent / "figures"
    failures_frame = pd.read_csv(failures) if failures else None
    title, sections = build(frame, plan_frame, calibration_frame, figure_dir, failures_frame)
    out_markdown.parent.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(figure_dir.resolve(), out_markdown.parent.resolve())
    out_markdown.write_text(markdown.render(title, sections, Path(relative).as_posix()))
    if out_html:
        Path(out_html).write_text(page.render(title, sections))
    print(f"report: {out_markdown}, {out_html}, {len(list(figure_dir.glob('*.png')))} figures")
