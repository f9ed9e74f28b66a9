"""memsweep: measure where PyMDP agents spend memory, and which fixes pay off.

The public face; everything else is importable but may change::

    from memsweep import Job, load_config, plan_sweep, measure, read_measurements

    planned = plan_sweep(load_config("config/config.yaml"))  # every configuration, planned
    job = Job("lean", "csr", "float32", grid=20, agents=10, sharing="shared", policy_len=1)
    outcome = measure(job, "m.parquet")                  # a fresh process, one Parquet file
    table = read_measurements("results/measurements")    # a file or a Hive tree

(``plan_sweep``, not ``plan``: ``memsweep.plan`` is the planning stage package.)
Names resolve on first use, so ``import memsweep`` stays cheap (Snakemake imports it
while it parses a sweep).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> (module, attribute)
_PUBLIC = {
    "Job": ("memsweep.plan.jobs", "Job"),
    "ConfigError": ("memsweep.plan.config", "ConfigError"),
    "load_config": ("memsweep.plan.config", "load"),
    "plan_sweep": ("memsweep.plan.sweep", "plan"),
    "measure": ("memsweep.harness.supervisor", "measure"),
    "calibrate": ("memsweep.harness.calibration", "calibrate"),
    "read_measurements": ("memsweep.results.schema", "read_measurements"),
    "aggregate": ("memsweep.results.aggregate", "run"),
    "write_report": ("memsweep.report.build", "write"),
    "backends": ("memsweep.agents", "names"),
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'memsweep' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
