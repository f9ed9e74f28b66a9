"""Snakemake adapter: write the sweep's plan table."""

import json

from memsweep.logs import logged
from memsweep.plan import predict, sweep

with logged(snakemake.log[0]):
    # The last sweep's fitted predictor, if any (the params hold its digest).
    planned = sweep.plan(json.loads(snakemake.params.config), predict.load_predictor())
    print(sweep.summary(planned))
    sweep.write_plan(planned, snakemake.output[0])
