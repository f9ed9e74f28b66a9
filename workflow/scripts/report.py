"""Snakemake adapter: the hotspot report (Markdown, HTML, figures)."""

from memsweep.logs import logged
from memsweep.report import build as report

with logged(snakemake.log[0]):
    report.write(
        measurements=snakemake.input.measurements,
        plan=snakemake.input.plan,
        calibration=snakemake.input.calibration,
        failures=snakemake.input.failures,
        profiles=[path for path in snakemake.input.profiles if path.endswith(".parquet")],
        out_markdown=snakemake.output.markdown,
        out_html=snakemake.output.html,
        figure_dir=snakemake.output.figures,
        comparison=next(iter(snakemake.input.comparison), None),
    )
