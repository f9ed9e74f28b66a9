"""Snakemake adapter: the configurations to profile (memsweep.harness.profile.targets)."""

import json

from memsweep.harness import profile
from memsweep.logs import logged

with logged(snakemake.log[0]):
    paths = json.loads(snakemake.params.paths)
    chosen = profile.write_targets(snakemake.input.measurements, paths, snakemake.output[0])
    print(f"profiling {len(chosen)} configuration(s):", *chosen, sep="\n  ")
