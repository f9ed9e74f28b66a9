"""Summarise benchmarks/jax_gpu.sh's combined Parquet file as two Markdown tables.

    python3 benchmarks/jax_gpu_summary.py "$OUT/jax_gpu.parquet"

One row per job (a configuration run in one process: ``config_id`` and ``started_at``,
since the same configuration runs once on the GPU and once on the CPU):

1. XLA's plan of the jitted ``step`` (``compile``/``step``, probe ``xla_memory_analysis``:
   argument, output, temp and generated-code bytes, and their sum), the accelerator's
   counters (``summary``/``all``/``device_peak_bytes_in_use`` and
   ``build``/``agents``/``device_bytes_in_use``, probe ``jax_memory_stats``), the process's
   peak above its baseline (``summary``/``all``/``peak_bytes`` by ``vmhwm``), the model's
   exact bytes (``summary``/``all``/``model_bytes``) and the median step time
   (``summary``/``all``/``step_seconds``).
2. XLA's ``temp_bytes`` of each program compiled on its own (``infer_states``,
   ``infer_policies``, ``sample_action``) beside the whole ``step``'s.

No column records the JAX platform a job ran on (``platform`` is the operating system's),
so the ``device`` column is inferred from the rows: ``gpu`` where the job wrote the
accelerator's counters (``jax_memory_stats``, which a CPU has none of), ``cpu`` where an
``ok`` job did not, ``?`` for a failed one. Sizes in MB (10⁶ B, as docs/data.md); a
figure the file lacks prints as "—". Needs pandas only (no memsweep, no tabulate).
"""

from __future__ import annotations

import sys

import pandas as pd

MB = 1e6
MISSING = "—"
XLA = "xla_memory_analysis"
DEVICE = "jax_memory_stats"
PLAN = ("argument_bytes", "output_bytes", "temp_bytes", "generated_code_bytes")
PROGRAMS = ("infer_states", "infer_policies", "sample_action", "step")
JOB = ["config_id", "started_at"]


def value(rows: pd.DataFrame, phase: str, operation: str, metric: str, probe: str):
    """The median of the ``ok`` rows named so (one row in a job), or None."""
    hit = rows[
        (rows["phase"] == phase)
        & (rows["operation"] == operation)
        & (rows["metric"] == metric)
        & (rows["probe"] == probe)
        & (rows["status"] == "ok")
    ]["value"].dropna()
    return float(hit.median()) if len(hit) else None


def mb(number) -> str:
    if number is None:
        return MISSING
    size = number / MB
    return f"{size:,.1f}" if abs(size) >= 10 else f"{size:.3g}"


def device_of(rows: pd.DataFrame) -> str:
    if (rows["probe"] == DEVICE).any():
        return "gpu"
    return "cpu" if (rows["status"] == "ok").any() and not failed(rows) else "?"


def failed(rows: pd.DataFrame) -> bool:
    return bool((rows["status"] == "failed").any())


def label(rows: pd.DataFrame) -> list[str]:
    first = rows.iloc[0]
    return [
        str(first["backend"]),
        device_of(rows),
        str(first["grid"]),
        str(first["agents"]),
        str(first["sharing"]),
        str(first["dtype"]),
        str(first["policy_len"]),
    ]


LABELS = ["backend", "device", "G", "agents", "sharing", "dtype", "L"]


def markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def jobs(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Each job's rows, in the order the jobs started."""
    keys = [k for k in JOB if k in frame.columns]
    groups = [rows for _, rows in frame.groupby(keys, sort=False, dropna=False)]
    return sorted(groups, key=lambda rows: str(rows.iloc[0].get("started_at", "")))


def main_table(groups: list[pd.DataFrame]) -> str:
    header = [
        *LABELS,
        "status",
        "XLA step arg MB",
        "out MB",
        "temp MB",
        "code MB",
        "sum MB",
        "device peak MB",
        "device in use after build MB",
        "vmhwm peak MB",
        "model MB",
        "step median ms",
    ]
    body = []
    for rows in groups:
        plan = [value(rows, "compile", "step", metric, XLA) for metric in PLAN]
        total = None if any(part is None for part in plan) else sum(plan)
        step = value(rows, "summary", "all", "step_seconds", "perf_counter")
        body.append(
            [
                *label(rows),
                "failed" if failed(rows) else "ok",
                *(mb(part) for part in plan),
                mb(total),
                mb(value(rows, "summary", "all", "device_peak_bytes_in_use", DEVICE)),
                mb(value(rows, "build", "agents", "device_bytes_in_use", DEVICE)),
                mb(value(rows, "summary", "all", "peak_bytes", "vmhwm")),
                mb(value(rows, "summary", "all", "model_bytes", "nbytes")),
                MISSING if step is None else f"{step * 1e3:,.2f}",
            ]
        )
    return markdown(header, body)


def plan_table(groups: list[pd.DataFrame]) -> str:
    header = [*LABELS, *(f"{program} temp MB" for program in PROGRAMS)]
    body = [
        [*label(rows), *(mb(value(rows, "compile", p, "temp_bytes", XLA)) for p in PROGRAMS)]
        for rows in groups
    ]
    return markdown(header, body)


def failures(groups: list[pd.DataFrame]) -> list[str]:
    notes = []
    for rows in groups:
        bad = rows[rows["status"] == "failed"]
        if len(bad):
            reason = " ".join(str(bad.iloc[0]["reason"]).split())[:300]
            notes.append(f"- {' '.join(label(rows))}: {reason}")
    return notes


def summarise(path: str) -> str:
    frame = pd.read_parquet(path)
    if frame.empty:
        return f"{path}: no rows"
    groups = jobs(frame)
    parts = [
        f"## {path}: {len(groups)} job(s), {len(frame)} rows",
        "",
        "XLA's plan of the jitted step, the device's counters and the process's peak",
        "",
        main_table(groups),
        "",
        "XLA's temp_bytes per program (each compiled on its own; the step fuses them)",
        "",
        plan_table(groups),
    ]
    notes = failures(groups)
    if notes:
        parts += ["", "Failed jobs:", *notes]
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: jax_gpu_summary.py JAX_GPU.parquet", file=sys.stderr)
        return 2
    print(summarise(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
