# Config validation and the plan, made once at parse time. The patterns and the
# input/params/resource functions live in memsweep.workflow (tested with the package).
import sys

from snakemake.utils import min_version, validate

from memsweep.plan.config import SCHEMA, ConfigError
from memsweep.workflow import (
    AGGREGATE_CODE,
    PLAN_CODE,
    REFERENCE_CODE,
    REPORT_CODE,
    Pipeline,
)

min_version("9.0")


validate(config, str(SCHEMA))
try:
    PIPELINE = Pipeline(config)
except ConfigError as error:
    raise ValueError(f"memsweep: {error}") from None

ENV = "../../environment.yml"
MEASURE_OUTPUT = PIPELINE.measure_pattern
REFERENCE_OUTPUT = PIPELINE.reference_pattern
MEASURE = PIPELINE.rule_functions()
MEASURE_COMMAND = PIPELINE.measure_command()


wildcard_constraints:
    **PIPELINE.wildcard_constraints(),
