from memsweep.workflow import COMPARE_CODE

COMPARE_COMMAND = PIPELINE.compare_command()


# The comparison a config asks for (`compare:` a saved baseline, or two values of an axis):
# `memsweep compare`, its verdict table, CSV and figure beside the hotspot report, which
# links the page. No `compare:` key, no rule.
if COMPARE_COMMAND:

    rule compare:
        input:
            measurements="results/measurements.parquet",
            calibration="results/calibration.parquet",
            code=COMPARE_CODE,
        output:
            PIPELINE.compare_outputs(),
        log:
            "results/logs/compare.log",
        localrule: True
        conda:
            ENV
        shell:
            COMPARE_COMMAND
