"""The hotspot report: Markdown (and HTML) from results/measurements.parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import hotspots


def write(measurements, plan, calibration, out_markdown) -> None:
    frame = pd.read_parquet(measurements)
    plan_frame = pd.read_parquet(plan)
    ranked = hotspots.top(frame, 10)
    lines = ["# Memory hotspots", ""]
    lines.append(
        f"{frame.config_id.nunique()} configurations measured, "
        f"{(plan_frame.status != 'run').sum()} planned out (see results/tables/failures.md)."
    )
    lines += ["", "## Largest measured memory consumers", ""]
    if ranked.empty:
        lines.append("No measurements.")
    else:
        shown = ranked.assign(MB=ranked.value / 1e6)[
            [
                "MB",
                "what",
                "phase",
                "operation",
                "probe",
                "backend",
                "storage",
                "dtype",
                "grid",
                "agents",
                "sharing",
                "config_id",
            ]
        ]
        lines.append(shown.to_markdown(index=False, floatfmt=".3f"))
    lines += ["", "## Probe calibration on this machine", ""]
    lines.append(pd.read_parquet(calibration).to_markdown(index=False, floatfmt=".4g"))
    Path(out_markdown).parent.mkdir(parents=True, exist_ok=True)
    Path(out_markdown).write_text("\n".join(lines) + "\n")
