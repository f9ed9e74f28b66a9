"""Snakemake adapter: every measurement file -> one table and the summary tables."""

from pathlib import Path

from memsweep.logs import logged
from memsweep.results import aggregate

with logged(snakemake.log[0]):
    aggregate.run(
        measurement_files=snakemake.input.measurements,
        plan_path=snakemake.input.plan,
        out=snakemake.output.measurements,
        tables_dir=Path(snakemake.output.tables[0]).parent,
    )
