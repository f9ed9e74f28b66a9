"""How fast the workflow plans, against a bare Snakefile of the same shape; and how long
the default sweep takes end to end.

    .venv/bin/python benchmarks/pipeline_speed.py            # dry runs only
    .venv/bin/python benchmarks/pipeline_speed.py --sweep    # also the default sweep

Two bare Snakefiles with trivial rules (``touch {output}``), each with the same output
paths (the same wildcards and values) as the workflow's measure jobs:

- *measure jobs only*: one rule, the measurements (the comparison of earlier reports);
- *same DAG*: also the reference jobs, each measure job's input edge to its reference,
  and the sweep-level jobs (plan, calibrate, aggregate, report), as the workflow has them.

The difference between the workflow's dry run and the same-DAG one is what memsweep adds
per job and at parse time (validation, plan, params and resource functions, log and
benchmark files, the conda directive). All runs are repeated and the median reported, in
one process, one after the other. Run it without the SLURM executor plugin importable (it
is not in `.[dev]`): where SLURM's client is installed, the plugin probes ``scontrol`` at
every Snakemake start, seconds that are no part of the workflow.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPIED = ("Snakefile", "workflow", "profiles", "config", "environment.yml")

BARE = """
import json
PATHS = json.load(open("paths.json"))
WILDCARDS = json.load(open("wildcards.json"))


wildcard_constraints:
    **WILDCARDS,


rule all:
    input:
        PATHS,


rule measure:
    output:
        MEASURE_PATTERN,
    shell:
        "touch {output}"
"""
# The same DAG as the workflow: references, the input edges to them, the sweep-level jobs.
BARE_DAG = """
import json
PATHS = json.load(open("paths.json"))
WILDCARDS = json.load(open("wildcards.json"))


wildcard_constraints:
    **WILDCARDS,


rule all:
    input:
        "report.txt",


rule plan:
    output:
        "plan.txt",
    shell:
        "touch {output}"


rule calibrate:
    output:
        "calibration.txt",
    shell:
        "touch {output}"


rule reference:
    output:
        REFERENCE_PATTERN,
    shell:
        "touch {output}"


rule measure:
    input:
        REFERENCE_PATTERN,
    output:
        MEASURE_PATTERN,
    shell:
        "touch {output}"


rule aggregate:
    input:
        PATHS,
        "plan.txt",
    output:
        "measurements.txt",
    shell:
        "touch {output}"


rule report:
    input:
        "measurements.txt",
        "plan.txt",
        "calibration.txt",
    output:
        "report.txt",
    shell:
        "touch {output}"
"""


def timed(command: list[str], folders: list[Path], repeats: int) -> list[float]:
    """The median wall time of ``command`` in each folder. The runs take turns (one in
    each folder, then again), so that a machine whose load drifts slows all of them alike."""
    times: list[list[float]] = [[] for _ in folders]
    for _ in range(repeats):
        for folder, series in zip(folders, times, strict=True):
            start = time.perf_counter()
            subprocess.run(command, cwd=folder, check=True, capture_output=True)
            series.append(time.perf_counter() - start)
    return [statistics.median(series) for series in times]


def copy_workflow(config: Path, destination: Path) -> Path:
    for name in COPIED:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, destination / name)
    # The config a user edits (a --configfile would be merged into the default).
    shutil.copy2(config, destination / "config" / "config.yaml")
    return destination


def bare_workflow(config: Path, destination: Path, template: str) -> int:
    from memsweep.workflow import Pipeline

    pipeline = Pipeline(yaml.safe_load(config.read_text()))
    paths = pipeline.measurement_files()
    (destination / "paths.json").write_text(json.dumps(paths))
    (destination / "wildcards.json").write_text(json.dumps(pipeline.wildcard_constraints()))
    snakefile = template.replace("MEASURE_PATTERN", repr(pipeline.measure_pattern))
    snakefile = snakefile.replace("REFERENCE_PATTERN", repr(pipeline.reference_pattern))
    (destination / "Snakefile").write_text(snakefile)
    return len(paths)


def slurm_plugin_importable() -> bool:
    return importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "full.yaml"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="also time the default sweep")
    args = parser.parse_args()
    config = Path(args.config).resolve()
    if slurm_plugin_importable():
        print("note: the SLURM executor plugin is importable here; where SLURM's client is")
        print("      installed, every dry run below includes its scontrol probe")
    dry = [SNAKEMAKE, "--dry-run", "--quiet", "all", "--cores", "2"]
    with tempfile.TemporaryDirectory() as folder:
        ours, bare, dag = (Path(folder) / name for name in ("ours", "bare", "dag"))
        for path in (ours, bare, dag):
            path.mkdir()
        copy_workflow(config, ours)
        jobs = bare_workflow(config, bare, BARE)
        bare_workflow(config, dag, BARE_DAG)
        ours_s, bare_s, dag_s = timed(dry, [ours, bare, dag], args.repeats)
    print(f"config: {config.relative_to(ROOT)}  measure jobs: {jobs}")
    print(f"dry run, memsweep workflow        : {ours_s:6.2f} s (median of {args.repeats})")
    print(f"dry run, bare, measure jobs only  : {bare_s:6.2f} s  ratio {ours_s / bare_s:5.2f}x")
    print(f"dry run, bare, same DAG           : {dag_s:6.2f} s  ratio {ours_s / dag_s:5.2f}x")
    print("goal: <= 1.3x, and <= 10 s")
    if args.sweep:
        with tempfile.TemporaryDirectory() as workdir:
            copy_workflow(ROOT / "config" / "config.yaml", Path(workdir))
            start = time.perf_counter()
            subprocess.run(
                [SNAKEMAKE, "--cores", "2"], cwd=workdir, check=True, capture_output=True
            )
            wall = time.perf_counter() - start
        print(f"default sweep, 2 cores     : {wall:6.1f} s wall (goal <= 300 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
