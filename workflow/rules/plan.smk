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
        # Every job's status under the last sweep's fitted predictor (results/model/
        # predictor.json): a new predictor replans when it moves a job across the budget.
        # Not an input: the predictor is made from this plan's measurements.
        statuses=PIPELINE.plan_statuses(),
    script:
        "../scripts/plan.py"


onstart:
    print(PIPELINE.summary(), file=sys.stderr)
