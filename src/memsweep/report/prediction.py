"""The plan's predicted memory beside the measured memory of each job."""

from __future__ import annotations

import pandas as pd

from memsweep.harness import probes
from memsweep.plan.predict import import_mb
from memsweep.report.queries import (
    FIX_AXES,
    Resolution,
    footprint,
    per_config,
    selector,
    shown_axes,
)


def prediction_table(
    frame: pd.DataFrame, plan: pd.DataFrame, resolution: Resolution | None = None
) -> pd.DataFrame:
    """The plan's predicted MB beside the measured memory of each measured job.

    ``measured_mb``: the whole process's peak resident memory by one probe (VmHWM:
    ``summary/total_peak_bytes``, the post-import baseline plus the peak above it; USS
    enters no sum). The prediction's import term is a whole process's resident memory after the
    import, so it also holds the interpreter; ``above_import`` compares the rest only:
    the prediction less its import term against the measured peak above the baseline.
    A measured figure below its probe's ``resolution`` (probe -> bytes) is left out (NaN):
    no error is computed from it.
    """
    whole = footprint(frame, "resident", resolution)
    whole = whole.assign(measured=whole.value.where(whole.resolved.astype(bool)))
    whole = whole[["config_id", "measured"]]
    peak = per_config(frame, selector("summary", "all", "peak_bytes", probes.VMHWM), resolution)
    peak = peak.assign(peak=peak.value.where(peak.resolved.astype(bool)))[["config_id", "peak"]]
    # The world and the allocator only where the sweep varied them; older plans lack
    # predicted_by.
    shown = shown_axes(plan)
    keys = [*shown, "grid", "agents", "config_id", "predicted_mb"]
    keys += [column for column in ("predicted_by",) if column in plan]
    table = (
        plan[plan.status == "run"][keys].merge(whole, on="config_id").merge(peak, on="config_id")
    )
    table = table.assign(
        measured_mb=table.measured / 1e6,
        import_term_mb=table.backend.map(import_mb).astype(float),
    )
    table = table.assign(
        error=(table.predicted_mb - table.measured_mb) / table.measured_mb,
        predicted_above_import_mb=table.predicted_mb - table.import_term_mb,
        measured_above_import_mb=table.peak / 1e6,
    )
    table = table.assign(
        above_import_error=(table.predicted_above_import_mb - table.measured_above_import_mb)
        / table.measured_above_import_mb.where(table.measured_above_import_mb > 0),
    )
    return table.drop(columns=["measured", "peak"]).sort_values(list(FIX_AXES) + ["grid", "agents"])
