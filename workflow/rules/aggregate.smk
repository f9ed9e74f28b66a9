TABLES = ["per_agent_bytes", "peak_bytes", "model_bytes", "step_seconds", "failures"]


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
