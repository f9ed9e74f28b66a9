"""Snakemake adapter: one configuration, measured in its own supervised process."""

import json

from memsweep.logs import logged
from memsweep.spec import Job
from memsweep.supervisor import measure_job

with logged(snakemake.log[0]):
    outcome = measure_job(
        Job.from_dict(json.loads(snakemake.params.job)),
        snakemake.output[0],
        reference=snakemake.input.reference,
        mem_cap_mb=snakemake.params.mem_cap_mb,
    )
    print("ok" if outcome.ok else f"failed: {outcome.reason}")
