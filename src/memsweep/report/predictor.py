"""Fit the memory predictor to a sweep's measurements, and test it leave-one-grid-out.

A job's peak resident memory, as a memory limit sees it, is read by one probe, the
kernel's high-water mark (``vmhwm``), as four consumers that add up to it:

- ``fixed``: the resident set at the post-import baseline (interpreter, libraries,
  warm-up): ``summary/baseline_bytes``;
- ``model``: the peak of building the model, above the window's start:
  ``build/model/call_peak_bytes``;
- ``agents``: the same for building the agents: ``build/agents/call_peak_bytes``;
- ``calls``: what the calls add beyond the build: ``summary/peak_bytes`` less the two
  builds' peaks (never below 0), so the four sum to ``summary/total_peak_bytes``, the
  process's peak from the baseline on (absolute).

Each is fitted per backend as ``a + b·x^k`` (scipy's ``curve_fit``) over every measured
configuration, with ``x`` what it scales with (:func:`memsweep.plan.predict.sizes`).
Files of the format before ``baseline_bytes`` have no fixed cost: their predictor
predicts the peak above the baseline only (``whole_process`` false), which the plan does
not use. Nothing here measures: a new predictor is fitted from the table alone.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd

from memsweep import __version__
from memsweep.files import atomic
from memsweep.harness import probes
from memsweep.plan import fitted, predict
from memsweep.plan.jobs import ALLOCATOR, TYPES, Job
from memsweep.report.queries import WORLD, per_config, selector, with_world

PROBE = probes.VMHWM
# consumer -> the rows it is read from (``calls`` is the rest of the peak, see above).
ROWS = {
    "fixed": selector("summary", "all", "baseline_bytes", PROBE),
    "model": selector("build", "model", "call_peak_bytes", PROBE),
    "agents": selector("build", "agents", "call_peak_bytes", PROBE),
}
PEAK_ABOVE = selector("summary", "all", "peak_bytes", PROBE)
TOTAL = selector("summary", "all", "total_peak_bytes", PROBE)
CONFIDENCE = 0.95
# The exponent's bounds. x counts the bytes a consumer holds by its backend's own
# arithmetic, and resident memory grows no faster than the bytes it holds (k ≤ 1), slower
# where small allocations reuse resident pages (k < 1). An exponent above 1 fitted to the
# scatter of few grids runs away when extrapolated (pymdp-jax's calls, k = 1.6 from grids
# 5 and 10: 12× grid 20's measured figure), and a plan would then mark runnable jobs
# over the budget.
K_BOUNDS = (0.5, 1.0)


def _mb(frame: pd.DataFrame, sel: dict) -> pd.Series:
    table = per_config(frame, sel)
    return pd.Series(table.value.to_numpy(float) / 1e6, index=table.config_id, dtype=float)


def consumer_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per measured configuration: its settings, ``x_<consumer>`` (what the
    consumer scales with) and ``y_<consumer>`` (what it took, MB), and ``target_mb``: the
    whole process's peak (``total_peak_bytes``) or, in the old format, the peak above
    the baseline. ``y_fixed`` is NaN where the format has no baseline."""
    above = _mb(frame, PEAK_ABOVE)
    if above.empty:
        return pd.DataFrame()
    measured = {name: _mb(frame, sel) for name, sel in ROWS.items()}
    table = pd.DataFrame({f"y_{name}": values for name, values in measured.items()})
    table = table.reindex(above.index).assign(peak_above=above)
    table = table.dropna(subset=["y_model", "y_agents", "peak_above"])
    table["y_calls"] = (table.peak_above - table.y_model - table.y_agents).clip(lower=0.0)
    table["target_mb"] = _mb(frame, TOTAL).reindex(table.index)
    # A setting the rows do not hold (pymdp_version, in files from before it existed, or
    # null where no PyMDP ran) takes its default.
    held = [key for key in TYPES if key in frame]
    settings = frame.drop_duplicates("config_id").set_index("config_id")[held]
    table = settings.join(table, how="inner")
    jobs = [job_of(row) for row in table[held].to_dict("records")]
    sizes = pd.DataFrame([predict.sizes(job) for job in jobs], index=table.index)
    table = table.join(sizes.add_prefix("x_"))
    return table.reset_index()


def job_of(settings: dict) -> Job:
    """A job from a row's settings, leaving out the null ones (their default then)."""
    return Job.from_dict({key: value for key, value in settings.items() if not pd.isna(value)})


def fit_keys(table: pd.DataFrame) -> pd.Series:
    """Each row's predictor key (:func:`memsweep.plan.fitted.key`): one fit per backend,
    world and allocator (a table without the allocator's column: memsweep's default)."""
    allocator = table[[name for name in ALLOCATOR if name in table]].to_dict("records")
    keys = zip(table.backend, table[WORLD], allocator, strict=True)
    return pd.Series([fitted.key(*key) for key in keys], index=table.index, name="fitted")


def whole_process(table: pd.DataFrame) -> bool:
    """Whether the table's jobs hold the fixed cost and the whole process's peak."""
    return bool(table.y_fixed.notna().all() and table.target_mb.notna().all())


# Fitting --------------------------------------------------------------------------------
def _model(x, a, b, k):
    return a + b * np.power(x, k, where=x > 0, out=np.zeros_like(x))


def _linear(x, a, b):
    return a + b * x


def fit(x, y) -> dict | None:
    """``a + b·x^k`` fitted to the points, with what a prediction interval needs.

    The form follows what the points can tell: ``k`` free from three distinct ``x`` and
    four points, ``k = 1`` from two distinct ``x``, a constant (``b = 0``) from one, so a
    consumer that does not vary is its mean. A form whose covariance is not finite (a
    parameter the points do not determine, e.g. ``k`` once ``b`` is 0) gives way to the
    next. ``a`` and ``b`` are at least 0: no consumer frees memory. None: under 2 points.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2:
        return None
    distinct = len(np.unique(x))
    for form in ("power", "linear", "constant"):
        if (form == "power" and (distinct < 3 or len(x) < 4)) or (
            form == "linear" and distinct < 2
        ):
            continue
        found = _fit_form(form, x, y)
        if found is not None:
            return found
    return None


def _fit_form(form: str, x: np.ndarray, y: np.ndarray) -> dict | None:
    from scipy import optimize

    if form == "constant":
        variance = float(np.var(y, ddof=1))
        covariance = np.diag([variance / len(y), 0.0, 0.0])  # the mean's variance
        return _fitted((float(np.mean(y)), 0.0, 1.0), covariance, variance, x, y, form)
    function = _model if form == "power" else _linear
    p0 = [max(float(y.min()), 0.0), 1.0, 1.0][: 3 if form == "power" else 2]
    bounds = ([0.0, 0.0, K_BOUNDS[0]][: len(p0)], [np.inf, np.inf, K_BOUNDS[1]][: len(p0)])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            found, cov = optimize.curve_fit(function, x, y, p0=p0, bounds=bounds)
    except (RuntimeError, ValueError):
        return None
    if not np.all(np.isfinite(cov)):
        return None
    residuals = y - function(x, *found)
    dof = len(y) - len(found)
    variance = float(residuals @ residuals / dof) if dof > 0 else 0.0
    covariance = np.zeros((3, 3))
    covariance[: len(found), : len(found)] = cov
    return _fitted((*map(float, found), 1.0)[:3], covariance, variance, x, y, form)


def _fitted(params, covariance, variance, x, y, form) -> dict:
    """A fit as the predictor file holds it (:class:`memsweep.plan.fitted.Fit`)."""
    from scipy import stats

    dof = len(y) - {"power": 3, "linear": 2, "constant": 1}[form]
    return {
        "form": form,
        "a": params[0],
        "b": params[1],
        "k": params[2],
        "covariance": covariance.tolist(),
        "residual_variance": variance,
        "t": float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof)) if dof > 0 else None,
        "points": int(len(y)),
        "x_range": [float(x.min()), float(x.max())],
    }


def fit_backend(table: pd.DataFrame) -> dict[str, dict]:
    """Consumer -> its fit, over one backend's rows (a consumer never measured: none)."""
    fits = {}
    for name in fitted.CONSUMERS:
        known = table[table[f"y_{name}"].notna()]
        found = fit(known[f"x_{name}"], known[f"y_{name}"])
        if found is not None:
            fits[name] = found
    return fits


def predict_rows(fits: dict[str, dict], table: pd.DataFrame, whole: bool) -> np.ndarray:
    """The sum of the consumers' fits at each row's sizes (the fixed cost only if ``whole``)."""
    names = [n for n in fitted.CONSUMERS if whole or n != "fixed"]
    total = np.zeros(len(table))
    for name in names:
        if name not in fits:
            return np.full(len(table), np.nan)
        one = fitted.Fit.from_dict(fits[name])
        total += np.array([one.mb(x) for x in table[f"x_{name}"]])
    return total


def measured_target(table: pd.DataFrame, whole: bool) -> pd.Series:
    return table.target_mb if whole else table.peak_above


# Leave one grid out -----------------------------------------------------------------------
def leave_one_grid_out(table: pd.DataFrame) -> pd.DataFrame:
    """Each configuration predicted by the fits of its backend's other grids: one row per
    configuration with ``held_out`` (its grid), ``predicted_mb``, ``measured_mb`` and
    ``error`` ((predicted − measured) / measured; negative: under-predicted).

    A grid is held out of one world at a time (the same grid of another world is another
    model, its sizes in the fit's terms): with several worlds, each world's grids in turn.
    """
    if table.empty:
        return pd.DataFrame()
    whole = whole_process(table)
    table = with_world(table)
    rows = []
    for key, own in table.groupby(fit_keys(table)):
        for grid in sorted(own.grid.unique()):
            fits = fit_backend(own[own.grid != grid])
            held = own[own.grid == grid]
            rows.append(
                held[
                    ["config_id", "backend", "storage", "dtype", "grid", "agents", "sharing", WORLD]
                ].assign(
                    fitted=key,
                    held_out=grid,
                    predicted_mb=predict_rows(fits, held, whole),
                    measured_mb=measured_target(held, whole).to_numpy(),
                )
            )
    errors = pd.concat(rows, ignore_index=True)
    return errors.assign(error=(errors.predicted_mb - errors.measured_mb) / errors.measured_mb)


def logo_summary(errors: pd.DataFrame, whole: bool) -> pd.DataFrame:
    """Per backend: the grids, jobs, median |error| and the worst under-prediction (the
    most negative error, 0 where nothing was under-predicted) of :func:`leave_one_grid_out`;
    None where no job could be predicted (one grid: nothing is left to fit)."""
    rows = []
    for key, own in errors.groupby("fitted" if "fitted" in errors else "backend"):
        predicted = own.error.dropna()
        rows.append(
            {
                "backend": key,
                "grids": len(own.held_out.unique()),
                "jobs": len(own),
                "predicted": len(predicted),
                "median_abs_error": float(predicted.abs().median()) if len(predicted) else None,
                "worst_under_prediction": min(float(predicted.min()), 0.0)
                if len(predicted)
                else None,
                "target": "whole process" if whole else "above the baseline",
            }
        )
    return pd.DataFrame(rows)


# The predictor file -------------------------------------------------------------------------
def predictor(frame: pd.DataFrame, code_digests: dict[str, str] | None = None) -> dict:
    """The predictor of a measurement table, as its JSON holds it (see the module doc)."""
    table = consumer_table(frame)
    whole = not table.empty and whole_process(table)
    backends, summary = {}, []
    if not table.empty:
        for key, own in table.groupby(fit_keys(with_world(table))):
            backends[key] = {
                "jobs": int(len(own)),
                "grids": sorted(int(g) for g in own.grid.unique()),
                "fits": fit_backend(own),
            }
        summary = logo_summary(leave_one_grid_out(table), whole).to_dict("records")
    return {
        "format": fitted.FORMAT,
        "memsweep_version": __version__,
        "code_digests": dict(sorted((code_digests or {}).items())),
        "probe": PROBE,
        "whole_process": whole,
        "consumers": {
            name: {"rows": ROWS.get(name, "summary/peak_bytes less model and agents")}
            for name in fitted.CONSUMERS
        },
        "backends": backends,
        "leave_one_grid_out": summary,
    }


def write(measurements, out, code_digests: dict[str, str] | None = None) -> dict:
    """Fit the predictor to the measurement table at ``measurements``; write it to ``out``
    (atomically, with sorted keys: the same table and code give the same bytes, so the
    plan that reads it is not redone for nothing)."""
    from memsweep.results.schema import read_frame

    data = predictor(read_frame(measurements), code_digests)
    with atomic(out) as temporary:
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def summary_text(data: dict) -> str:
    """The leave-one-grid-out table of a predictor, as lines of text."""
    rows = data["leave_one_grid_out"]
    if not rows:
        return "no measured configuration: no fit"
    width = max(12, *(len(row["backend"]) for row in rows))
    lines = [
        f"{'backend':<{width}} {'grids':>5} {'jobs':>4} {'median |error|':>14} {'worst under':>11}"
    ]
    for row in rows:
        median, worst = (
            "—" if row[key] is None or math.isnan(row[key]) else f"{100 * row[key]:.1f}%"
            for key in ("median_abs_error", "worst_under_prediction")
        )
        lines.append(
            f"{row['backend']:<{width}} {row['grids']:>5} {row['jobs']:>4} {median:>14} {worst:>11}"
        )
    lines.append(f"target: {rows[0]['target']} ({PROBE}), leave one grid out")
    return "\n".join(lines)
