"""How fast the workflow plans, against a bare Snakefile of the same shape; and how long
the default sweep takes end to end.

    .venv/bin/python benchmarks/pipeline_speed.py            # dry runs only
    .venv/bin/python benchmarks/pipeline_speed.py --sweep    # also the default sweep

The bare Snakefile has the same number of jobs, the same output paths (the same
wildcards and values) and trivial rules: the difference between the two dry runs
is what memsweep's parse-time work (validation, plan, input functions) costs.
Each dry run is repeated and the median reported.
"""

from __future__ import annotations

import argparse
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
        PATTERN,
    shell:
        "touch {output}"
"""


def timed(command: list[str], cwd: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_workflow(config: Path, destination: Path) -> Path:
    for name in COPIED:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, destination / name)
    # The config a user edits (a --configfile would be merged into the default).
    shutil.copy2(config, destination / "config" / "config.yaml")
    return destination


def bare_workflow(config: Path, destination: Path) -> int:
    import json

    from memsweep.workflow import Pipeline

    pipeline = Pipeline(yaml.safe_load(config.read_text()))
    paths = pipeline.measurement_files()
    (destination / "paths.json").write_text(json.dumps(paths))
    (destination / "wildcards.json").write_text(json.dumps(pipeline.wildcard_constraints()))
    snakefile = BARE.replace("PATTERN", repr(pipeline.measure_pattern))
    (destination / "Snakefile").write_text(snakefile)
    return len(paths)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "full.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", action="store_true", help="also time the default sweep")
    args = parser.parse_args()
    config = Path(args.config).resolve()
    dry = [SNAKEMAKE, "--dry-run", "--quiet", "all", "--cores", "2"]
    with tempfile.TemporaryDirectory() as ours, tempfile.TemporaryDirectory() as bare:
        copy_workflow(config, Path(ours))
        jobs = bare_workflow(config, Path(bare))
        ours_s = timed(dry, Path(ours), args.repeats)
        bare_s = timed(dry, Path(bare), args.repeats)
    print(f"config: {config.relative_to(ROOT)}  measure jobs: {jobs}")
    print(f"dry run, memsweep workflow : {ours_s:6.2f} s (median of {args.repeats})")
    print(f"dry run, bare Snakefile    : {bare_s:6.2f} s (same jobs and wildcards)")
    print(f"ratio                      : {ours_s / bare_s:6.2f}x  (goal <= 1.5x, and <= 15 s)")
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
