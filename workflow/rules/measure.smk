rule measure:
    input:
        unpack(PIPELINE.measure_inputs),
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
        mem_mb=PIPELINE.mem_mb,
        runtime=PIPELINE.runtime,
    params:
        job=PIPELINE.job_json,
        mem_cap_mb=PIPELINE.mem_cap_mb,
    script:
        "../scripts/measure.py"
