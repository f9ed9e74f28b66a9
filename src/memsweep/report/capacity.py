"""What fits in 1, 8 and 64 GB: per backend (and world, where a sweep measured several),
the predictor fitted to this sweep asked,
as ``memsweep predict --fit-in`` does, for the most agents (at the backend's base grid)
and the largest grid (at its base agent count) whose predicted peak stays within each
size, by the fit and by its interval's upper end (what a scheduler request should use).
"""

from __future__ import annotations

import json

import pandas as pd

from memsweep.plan import fitted, forecast
from memsweep.plan.jobs import TYPES
from memsweep.report import predictor as fitting
from memsweep.report.needed import bases, largest
from memsweep.report.queries import WORLD, Tables, several_worlds

SIZES_GB = (1, 8, 64)


def _searched(axis: str, value: int | None) -> str:
    if value is None:
        return "none"
    top = int(forecast.bounds(axis).get("maximum", forecast.MOST_AGENTS))
    return f"≥ {value} (searched to {top})" if value >= top else str(value)


def capacity(
    frame: pd.DataFrame, resolution: dict | None = None, data: dict | None = None
) -> pd.DataFrame:
    """One row per backend and size; empty where no backend has a whole-process fit.
    ``data``: the predictor already fitted to ``frame`` (:func:`memsweep.report.predictor.
    predictor`), where the caller has it; else it is fitted here."""
    data = data if data is not None else fitting.predictor(frame)
    if not data["whole_process"]:
        return pd.DataFrame()
    model = fitted.from_json(json.dumps(data))
    tables = Tables(frame, resolution)
    several = several_worlds(tables.configs)
    rows = []
    for backend, world in bases(tables):
        base = largest(tables, backend, world)
        if base is None:
            continue
        job = fitting.job_of({key: base[key] for key in TYPES if key in base})
        key = fitted.job_key(job)
        if key not in model.fits or not model.covers(key):
            continue
        for gb in SIZES_GB:
            limit = gb * 1000.0
            found = {"backend": backend, **({WORLD: world} if several else {}),
                     "memory": f"{gb} GB", "base": forecast.describe_job(job)}  # fmt: skip
            for upper, name in ((False, "fit"), (True, "upper end")):
                peak = forecast.peak_of(model, upper)
                agents = forecast.largest(job, "agents", limit, peak)
                grid = forecast.largest(job, "grid", limit, peak)
                found[f"agents at G={job.grid} ({name})"] = _searched("agents", agents)
                found[f"grid at {job.agents} agents ({name})"] = _searched("grid", grid)
            rows.append(found)
    return pd.DataFrame(rows)
