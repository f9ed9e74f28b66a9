from memsweep.workflow import PROFILE_TARGETS_CODE

PROFILE_OUTPUT = PIPELINE.profile_pattern
PROFILE_FLAMEGRAPH = PIPELINE.flamegraph_pattern
PROFILE_COMMAND = PIPELINE.profile_command()


# Deep profiles under memray (memsweep.harness.profile). After the aggregate, this
# checkpoint picks per backend the configuration with the largest peak above its baseline
# (summary/peak_bytes by vmhwm); the report takes what it picked, each one's rows and
# flame graph (PIPELINE.profile_files, through the checkpoint: report.smk).
checkpoint profile_targets:
    input:
        measurements="results/measurements.parquet",
        code=PROFILE_TARGETS_CODE,
    output:
        "results/profiles/targets.txt",
    log:
        "results/logs/profile_targets.log",
    localrule: True
    conda:
        ENV
    params:
        paths=PIPELINE.profile_paths,
    script:
        "../scripts/profile_targets.py"


# One configuration measured again under memray: its rows and its flame graph, beside its
# measurement's path under results/profiles/. The measure rule's code digest and model
# settings are its params, its measurement and reference its inputs: a profile reruns
# only when its configuration was measured again or its code changed.
rule profile:
    input:
        measurement=MEASURE_OUTPUT,
        reference=REFERENCE_OUTPUT,
    output:
        rows=PROFILE_OUTPUT,
        flamegraph=PROFILE_FLAMEGRAPH,
    log:
        PIPELINE.beside(PROFILE_OUTPUT, "logs", ".log"),
    conda:
        ENV
    resources:
        **MEASURE_RESOURCES,
        mem_cap_mb=MEASURE_CAP,
    params:
        model=PIPELINE.model_settings(),
        code=MEASURE["code_version"],
    shell:
        PROFILE_COMMAND
