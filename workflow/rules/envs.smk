# An environment of its own for each PyMDP release the sweep names but memsweep does not
# pin (memsweep.harness.envs): built once, under ~/.cache/memsweep/envs (or
# $MEMSWEEP_ENVS), before the release's measure jobs, which take its marker as an input.
rule pymdp_env:
    input:
        code=ENVS_CODE,
    output:
        PIPELINE.env_marker("{version}"),
    log:
        "results/logs/envs/pymdp-{version}.log",
    wildcard_constraints:
        **PIPELINE.env_constraints(),
    localrule: True
    conda:
        ENV
    params:
        requirements=PIPELINE.env_requirements,
    shell:
        PIPELINE.env_command()
