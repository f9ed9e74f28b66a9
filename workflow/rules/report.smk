from memsweep.workflow import sources


# Every probe against allocations of 4 KB to 256 MB, each in fresh processes (~10 s of
# CPU): the limits' verdicts and each probe's resolution, below which the report marks
# a figure instead of using it. Reruns when the calibration or the probes change.
rule calibrate:
    input:
        code=sources("harness/calibration.py", "harness/probes.py"),
    output:
        "results/calibration.parquet",
    log:
        "results/logs/calibrate.log",
    conda:
        ENV
    resources:
        mem_mb=1500,
    script:
        "../scripts/calibrate.py"


# The figures are one folder: their names live in memsweep.report.figures' registry, which
# the parser does not import (it pulls in pandas and matplotlib). Snakemake's own report
# picks every PNG in it, captioned by workflow/report/figures.rst, which is rendered from
# that registry (`python -m memsweep.report.figures --rst > workflow/report/figures.rst`;
# tests/test_report_units.py fails when it is out of date).
rule report:
    input:
        measurements="results/measurements.parquet",
        plan="results/sweep/plan.parquet",
        calibration="results/calibration.parquet",
        # The aggregate's failures table: it alone lists the files it could not read.
        failures="results/tables/failures.csv",
        # The deep profiles the checkpoint picked (profile.smk): rows and flame graphs.
        profiles=lambda wildcards: PIPELINE.profile_files(
            checkpoints.profile_targets.get().output[0]
        ),
        # The comparison the config asks for (compare.smk), linked from the report.
        comparison=PIPELINE.compare_outputs()[:1],
        code=REPORT_CODE,
    output:
        markdown="results/report/hotspots.md",
        html=report(
            "results/report/hotspots.html",
            caption="../report/hotspots.rst",
            category="Hotspot report",
        ),
        figures=report(
            directory("results/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"figure": "{name}"},
        ),
    log:
        "results/logs/report.log",
    localrule: True
    conda:
        ENV
    # Two processes: the figures are drawn in one beside the sections (report/figures.py).
    threads: 2
    script:
        "../scripts/report.py"
