"""Snakemake adapter: the reference trace, made in its own process."""

import json

from memsweep.harness.supervisor import make_reference_file
from memsweep.logs import logged
from memsweep.plan.jobs import Job

with logged(snakemake.log[0]):
    make_reference_file(Job.from_dict(json.loads(snakemake.params.job)), snakemake.output[0])
