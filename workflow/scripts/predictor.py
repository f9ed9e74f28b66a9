"""Snakemake adapter: fit the memory predictor to the measurement table."""

import json

from memsweep.logs import logged
from memsweep.report import predictor

with logged(snakemake.log[0]):
    fitted = predictor.write(
        snakemake.input.measurements,
        snakemake.output[0],
        code_digests=json.loads(snakemake.params.code),
    )
    print(predictor.summary_text(fitted))
