rule reference:
    input:
        code=REFERENCE_CODE,
        world=PIPELINE.world_files,
    output:
        REFERENCE_OUTPUT,
    log:
        PIPELINE.beside(REFERENCE_OUTPUT, "logs", ".log"),
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        job=PIPELINE.reference_json,
    script:
        "../scripts/reference.py"
