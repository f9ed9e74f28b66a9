"""Snakemake adapter: the probes against allocations of known size, on this machine."""

import pandas as pd

from memsweep.harness.probes import calibrate
from memsweep.logs import logged

with logged(snakemake.log[0]):
    table = pd.DataFrame(calibrate())
    print(table.to_string(index=False))
    table.to_parquet(snakemake.output[0], index=False)
