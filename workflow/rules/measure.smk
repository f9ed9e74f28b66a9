# Every directive here is evaluated for each of thousands of jobs, dry runs included. No
# `benchmark:`: the job's own probes record its memory (vmhwm, USS, RssAnon), better than
# Snakemake's samples every 0.5 s, and a benchmark file per job cost ~5 % of a dry run.
# The group that SLURM runs share is assigned in profiles/slurm.
rule measure:
    input:
        reference=REFERENCE_OUTPUT,
        env=MEASURE_ENV,
    output:
        MEASURE_OUTPUT,
    log:
        PIPELINE.beside(MEASURE_OUTPUT, "logs", ".log"),
    conda:
        ENV
    # One core per job: the supervisor runs the measured process single-threaded (BLAS,
    # OpenMP, XLA), so `--cores N` runs N jobs side by side without oversubscribing.
    threads: 1
    resources:
        # mem_mb and runtime per job, where a scheduler reads them (common.smk).
        **MEASURE_RESOURCES,
        # The supervisor stops a job past the budget: one job cannot take the machine down.
        # A resource, not a param (resources are no rerun trigger): a changed budget reruns
        # only the jobs it makes runnable and, through cap_retry, those the cap stopped.
        mem_cap_mb=MEASURE_CAP,
    params:
        model=PIPELINE.model_settings(),
        code=MEASURE["code_version"],
        # Changes when the budget rises above the peak of a job the cap stopped (common.smk).
        cap_retry=MEASURE_CAP_RETRY,
    shell:
        MEASURE_COMMAND
