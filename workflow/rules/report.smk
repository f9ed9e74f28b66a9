rule calibrate:
    output:
        "results/calibration.parquet",
    log:
        "results/logs/calibrate.log",
    conda:
        ENV
    resources:
        mem_mb=1500,
    script:
        "../scripts/calibrate.py"


rule report:
    input:
        measurements="results/measurements.parquet",
        plan="results/sweep/plan.parquet",
        calibration="results/calibration.parquet",
        code=PIPELINE.code(REPORT_CODE),
    output:
        markdown="results/report/hotspots.md",
    log:
        "results/logs/report.log",
    localrule: True
    conda:
        ENV
    script:
        "../scripts/report.py"
