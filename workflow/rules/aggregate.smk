from memsweep.workflow import PREDICTOR_CODE

# One table per summary metric (memsweep.results.schema.SUMMARY_METRICS), and the failures;
# tests/test_aggregate.py keeps this list equal to what the aggregate writes.
TABLES = [
    "baseline_bytes",
    "peak_bytes",
    "total_peak_bytes",
    "job_peak_bytes",
    "per_agent_bytes",
    "model_bytes",
    "step_seconds",
    "step_seconds_cv",
    "failures",
]


rule aggregate:
    input:
        measurements=PIPELINE.measurement_files(),
        plan="results/sweep/plan.parquet",
        code=AGGREGATE_CODE,
    output:
        measurements="results/measurements.parquet",
        tables=expand("results/tables/{table}.{ext}", table=TABLES, ext=["csv", "md"]),
    log:
        "results/logs/aggregate.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/aggregate.py"


# The memory predictor fitted to the measurements (memsweep.report.predictor): the next
# plan's predictions and the measure jobs' requests follow it. It measures nothing, and
# the measure rule does not take it, so a new predictor reruns no measurement.
rule predictor:
    input:
        measurements="results/measurements.parquet",
        code=PREDICTOR_CODE,
    output:
        "results/model/predictor.json",
    log:
        "results/logs/predictor.log",
    localrule: True
    conda:
        ENV
    params:
        # The digest of the code that measured each backend, recorded in the predictor.
        code=PIPELINE.code_digests,
    script:
        "../scripts/predictor.py"
