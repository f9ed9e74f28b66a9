rule plan:
    input:
        # What a plan says depends on the backends' declared capabilities and the
        # prediction: an edit there rewrites the plan (and so the report's reasons).
        code=PLAN_CODE,
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
