"""Snakemake adapter: the reference trace, made in its own process."""

import json

from memsweep.logs import logged
from memsweep.spec import Job
from memsweep.supervisor import make_reference_file

with logged(snakemake.log[0]):
    make_reference_file(Job.from_dict(json.loads(snakemake.params.job)), snakemake.output[0])
