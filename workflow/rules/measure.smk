# Every directive here is evaluated for each of thousands of jobs, dry runs included. No
# `benchmark:`: the job's own probes record its memory (vmhwm, USS, RssAnon), better than
# Snakemake's samples every 0.5 s, and a benchmark file per job cost ~5 % of a dry run.
# The group that SLURM runs share is assigned in profiles/slurm.
rule measure:
    input:
        reference=REFERENCE_OUTPUT,
    output:
        MEASURE_OUTPUT,
    log:
        PIPELINE.beside(MEASURE_OUTPUT, "logs", ".log"),
    conda:
        ENV
    resources:
        # mem_mb and runtime per job, where a scheduler reads them (common.smk).
        **MEASURE_RESOURCES,
    params:
        model=PIPELINE.model_settings(),
        code=MEASURE["code_version"],
        # The supervisor stops a job past the budget: one job cannot take the machine down.
        mem_cap_mb=PIPELINE.max_job_mb,
    shell:
        MEASURE_COMMAND
