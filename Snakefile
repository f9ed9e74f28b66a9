# memsweep: where PyMDP agents spend memory, and which fixes pay off.
# `snakemake --cores all` runs the sweep in config/config.yaml to results/report/.
# Stages live in workflow/rules/, one file each; the logic lives in src/memsweep/.


# One defaulting rule, the same as `memsweep plan FILE`'s: a sweep is one file, and what it
# leaves out takes the schema's default, never another file's value. So config/config.yaml
# is read only when no --configfile names the sweep (`--config key=value` still adjusts it).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/plan.smk"
include: "workflow/rules/reference.smk"
include: "workflow/rules/envs.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        rules.predictor.output,
