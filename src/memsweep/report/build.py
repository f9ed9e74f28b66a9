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

from memsweep.files import atomic, atomic_folder, remove_partials
from memsweep.harness import calibration as calibrated
from memsweep.report import figures, hotspots, markdown, page, text
from memsweep.report.document import Section
from memsweep.report.prediction import prediction_table
from memsweep.report.queries import with_world
from memsweep.report.sections import SECTIONS, Context
from memsweep.results.schema import read_file, read_frame, to_frame


def read_profiles(paths, report_folder) -> pd.DataFrame:
    """The deep profiles' rows (``memsweep profile``), each with ``flamegraph``: its flame
    graph's path relative to the report's folder, for a link that survives a move."""
    frames = []
    for path in map(Path, paths or ()):
        page = path.with_suffix(".html").resolve()
        link = Path(os.path.relpath(page, Path(report_folder).resolve())).as_posix()
        frames.append(to_frame(read_file(path)).assign(flamegraph=link))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def build(
    frame, plan, calibration, figure_dir, failures=None, profiles=None, comparison=None
) -> tuple[str, list[Section]]:
    """The report's title and sections; writes the figures into ``figure_dir``.

    ``failures`` is the aggregate's failures table (it alone knows the files it could not
    read); without it the report lists what the measurements and the plan show.
    ``profiles``: the deep profiles' rows (:func:`read_profiles`), if any.
    ``comparison``: the page of the comparison the config asked for, relative to the
    report's folder, if any (the summary links it).
    """
    resolution = calibrated.resolution(calibration)  # figures below it are marked, not used
    frame = with_world(frame)  # a table from before the world column: the default world's
    prediction = prediction_table(frame, plan, resolution) if not plan.empty else pd.DataFrame()
    # The figures are drawn beside the sections, which need only their paths.
    with figures.drawn_beside(frame, prediction, figure_dir) as drawn:
        context = Context(
            frame=frame,
            plan=plan,
            calibration=calibration,
            ranked=hotspots.rank(frame, plan, resolution),
            prediction=prediction,
            figures=drawn,
            failures=failures,
            profiles=profiles if profiles is not None else pd.DataFrame(),
            comparison=comparison,
        )
        made = (section(context) for section in SECTIONS)  # None: a section that does not apply
        parts = [part for section in made if section is not None for part in section.flat()]
    return text.TITLE, parts


def write(
    measurements,
    plan,
    calibration,
    out_markdown,
    out_html=None,
    figure_dir=None,
    failures=None,
    profiles=None,
    comparison=None,
) -> None:
    """Read the tables, build the report, write Markdown (and HTML) and the figures.

    ``failures``: the aggregate's ``failures.csv``, which lists unreadable files too.
    ``profiles``: the deep profiles' Parquet files, their flame graphs beside them.
    ``comparison``: the HTML page of ``memsweep compare`` the config asked for, if any.
    Every file is written atomically: the figures are drawn into a temporary folder
    that replaces ``figure_dir`` whole (they are one set, drawn from one table, and a
    mix of two versions would disagree with the text), and each page is written to a
    temporary name and renamed. So a crash half-way leaves the previous report.
    """
    frame = read_frame(measurements)
    plan_frame = pd.read_parquet(plan)
    calibration_frame = pd.read_parquet(calibration)
    out_markdown = Path(out_markdown)
    figure_dir = Path(figure_dir) if figure_dir else out_markdown.parent / "figures"
    failures_frame = pd.read_csv(failures) if failures else None
    profiles_frame = read_profiles(profiles, out_markdown.parent)
    relative = os.path.relpath(figure_dir.resolve(), out_markdown.parent.resolve())
    for path in (figure_dir, out_markdown, out_html):  # what a writer killed outright left
        if path:
            remove_partials(path)
    with atomic_folder(figure_dir) as drawn:
        linked = (
            Path(os.path.relpath(Path(comparison).resolve(), out_markdown.parent.resolve()))
            if comparison
            else None
        )
        title, sections = build(
            frame, plan_frame, calibration_frame, drawn, failures_frame, profiles_frame,
            linked.as_posix() if linked else None,
        )  # fmt: skip
        # Rendered while the figures are in the temporary folder: the page embeds them.
        pages = {out_markdown: markdown.render(title, sections, Path(relative).as_posix())}
        if out_html:
            pages[Path(out_html)] = page.render(title, sections)
    for path, content in pages.items():
        with atomic(path) as temporary:
            temporary.write_text(content)
    print(f"report: {out_markdown}, {out_html}, {len(list(figure_dir.glob('*.png')))} figures")
