rule measure:
    input:
        reference=REFERENCE_OUTPUT,
    output:
        MEASURE_OUTPUT,
    log:
        PIPELINE.beside(MEASURE_OUTPUT, "logs", ".log"),
    benchmark:
        PIPELINE.beside(MEASURE_OUTPUT, "benchmarks", ".tsv")
    group:
        "measure"
    conda:
        ENV
    resources:
        mem_mb=MEASURE["mem_mb"],
        runtime=MEASURE["runtime"],
    params:
        model=PIPELINE.model_settings(),
        code=MEASURE["code_version"],
        # The supervisor stops a job past the budget: one job cannot take the machine down.
        mem_cap_mb=PIPELINE.max_job_mb,
    shell:
        MEASURE_COMMAND
