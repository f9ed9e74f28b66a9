"""What glibc's allocator settings do to a job's memory: the same configuration measured
in several fresh processes under each setting, the medians and ranges.

    .venv/bin/python benchmarks/allocator.py            # 3 processes a setting
    .venv/bin/python benchmarks/allocator.py --runs 5

The settings: glibc's own (``malloc_arena_max`` 0, ``malloc_mmap_threshold`` 0), one
arena, and the mmap threshold fixed at glibc's starting 128 KiB (memsweep's default).
Each run is one ``memsweep measure`` job (its own process, started by the supervisor
with the job's variables). The runs go round-robin over the settings, so a slow or fast
stretch of the host falls on all of them. Writes ``benchmarks/results/allocator.{md,
parquet}`` (every row of every run).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from memsweep.harness import supervisor
from memsweep.plan.jobs import Job, reference_job
from memsweep.results.schema import read_frame

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "allocator"
BASE = dict(storage="dense", dtype="float64", agents=10, sharing="private", policy_len=1,
            steps=10, repeats=2)  # fmt: skip
# (malloc_arena_max, malloc_mmap_threshold): glibc's own, one arena, a fixed threshold.
SETTINGS = ((0, 0), (1, 0), (0, 2**17))
# JAX, whose runtime allocates from threads of its own, at the grid where the default
# sweep saw its peak spread (15) and at its base (20); the numpy agent and lean, one
# thread each, at their base.
CASES = [("pymdp-jax", 15), ("pymdp-jax", 20), ("pymdp-numpy", 20), ("lean", 20)]
FIGURES = {
    "peak MB [vmhwm]": ("summary", "all", "total_peak_bytes", "vmhwm", 1e-6),
    "retained after cleanup MB [rss_anon]": (
        "cleanup",
        "drop_agents",
        "retained_bytes",
        "rss_anon",
        1e-6,
    ),  # fmt: skip
    "step ms [perf_counter]": ("summary", "all", "step_seconds", "perf_counter", 1e3),
}


def jobs() -> list[Job]:
    return [
        Job(
            backend=backend,
            grid=grid,
            malloc_arena_max=arenas,
            malloc_mmap_threshold=threshold,
            **BASE,
        )  # fmt: skip
        for backend, grid in CASES
        for arenas, threshold in SETTINGS
    ]


def run(runs: int, scratch: Path) -> pd.DataFrame:
    references = {}
    frames = []
    for index in range(runs):
        for job in jobs():
            key = reference_job(job)
            if key not in references:
                references[key] = scratch / f"reference-{key.config_id}.npz"
                supervisor.make_reference_file(key, references[key])
            out = scratch / f"{job.config_id}-{index}.parquet"
            outcome = supervisor.measure_job(job, out, references[key])
            status = "ok" if outcome.ok else outcome.reason
            print(f"run {index + 1}/{runs} {job.backend} G={job.grid} "
                  f"arenas={job.malloc_arena_max} "
                  f"threshold={job.malloc_mmap_threshold}: {status}")  # fmt: skip
            frames.append(read_frame(out).assign(process=index))
    return pd.concat(frames, ignore_index=True)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    keys = ["backend", "grid", "malloc_arena_max", "malloc_mmap_threshold"]
    for (backend, grid, arenas, threshold), own in rows.groupby(keys):
        found = {"backend": backend, "grid": grid, "malloc_arena_max": arenas,
                 "malloc_mmap_threshold": threshold,
                 "processes": own.process.nunique()}  # fmt: skip
        for name, (phase, operation, metric, probe, scale) in FIGURES.items():
            chosen = own[(own.phase == phase) & (own.operation == operation)
                         & (own.metric == metric) & (own.probe == probe)
                         & (own.status == "ok")]  # fmt: skip
            values = chosen.groupby("process").value.median() * scale
            found[name] = f"{values.median():.1f} ({values.min():.1f}–{values.max():.1f})"
        out.append(found)
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="processes per setting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memsweep-arenas-") as scratch:
        rows = run(args.runs, Path(scratch))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(OUT.with_suffix(".parquet"))
    table = summary(rows)
    host = rows.hostname.iloc[0]
    text = [
        "# glibc's allocator settings: the same job in fresh processes",
        "",
        f"Made by `benchmarks/allocator.py --runs {args.runs}` on {host} "
        f"(PyMDP {rows.pymdp_version.iloc[0]}, jax {rows.jax_version.dropna().iloc[0]}). "
        "Ten private agents, dense, float64, policy_len 1, 10 steps × 2 repeats. Each cell: "
        "the median over the processes, (lowest–highest). 0 leaves a variable unset: "
        "glibc's own (8 arenas a core; a dynamic mmap threshold). Every row is in the "
        "parquet file beside this one.",
        "",
        table.to_markdown(index=False),
        "",
    ]
    OUT.with_suffix(".md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
