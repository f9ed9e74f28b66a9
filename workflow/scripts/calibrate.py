"""Snakemake adapter: the probes against allocations of known size, on this machine."""

from memsweep.harness import calibration
from memsweep.logs import logged

with logged(snakemake.log[0]):
    print(calibration.write(snakemake.output[0]).to_string(index=False))
