# Config validation and the plan, made once at parse time. The patterns and the
# input/params/resource functions live in memsweep.workflow (tested with the package).
import sys

from snakemake.utils import min_version

from memsweep.plan.config import ConfigError
from memsweep.workflow import (
    AGGREGATE_CODE,
    ENVS_CODE,
    PLAN_CODE,
    REFERENCE_CODE,
    REPORT_CODE,
    Pipeline,
)

min_version("9.0")


# memsweep checks the config itself (every error, each naming its key), against the
# schema that its package holds: the backend choices come from the backend modules.
try:
    PIPELINE = Pipeline(config)
except ConfigError as error:
    raise ValueError(f"memsweep: {error}") from None

ENV = "../../environment.yml"
MEASURE_OUTPUT = PIPELINE.measure_pattern
REFERENCE_OUTPUT = PIPELINE.reference_pattern
MEASURE = PIPELINE.rule_functions()
# Per-job mem_mb and runtime only where they are read: a cluster executor (it needs
# --jobs) or a local --resources limit on them (memsweep.workflow.Pipeline.measure_resources).
MEASURE_RESOURCES = PIPELINE.measure_resources(
    workflow.resource_settings.nodes, workflow.global_resources.keys()
)
MEASURE_COMMAND = PIPELINE.measure_command()
# The environment of the job's PyMDP release, none for the pinned one (workflow/rules/envs.smk).
MEASURE_ENV = PIPELINE.env_input()
MEASURE_CAP = PIPELINE.mem_cap()
# "" unless `memsweep measure` left sidecars of jobs the cap stopped (memsweep.harness.retry).
MEASURE_CAP_RETRY = PIPELINE.cap_retry()


wildcard_constraints:
    **PIPELINE.wildcard_constraints(),
