"""Snakemake adapter: write the sweep's plan table."""

import json

from memsweep.logs import logged
from memsweep.plan import sweep

with logged(snakemake.log[0]):
    planned = sweep.plan(json.loads(snakemake.params.config))
    print(sweep.summary(planned))
    sweep.write_plan(planned, snakemake.output[0])
