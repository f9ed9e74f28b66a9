"""Snakemake adapter: the probes against allocations of known size, on this machine."""

from memsweep.harness import calibration
from memsweep.logs import logged

with logged(snakemake.log[0]):
    table = calibration.write(snakemake.output[0])
    print(table.to_string(index=False))
    for verdict in calibration.verdicts(table):
        print(verdict.line())
