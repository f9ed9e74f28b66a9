rule plan:
    output:
        "results/sweep/plan.parquet",
    log:
        "results/logs/plan.log",
    localrule: True
    conda:
        ENV
    params:
        config=PIPELINE.config_json,
    script:
        "../scripts/plan.py"


onstart:
    print(PIPELINE.summary(), file=sys.stderr)
