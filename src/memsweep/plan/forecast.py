"""``memsweep predict``: a configuration's predicted peak memory and its parts, for any
size (measured or not), and the largest grid and agent count that fit in a given memory.

The fitted predictor (:mod:`memsweep.plan.fitted`) gives each consumer with its 95 %
prediction interval; without one, the analytic formula's terms (no interval).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from memsweep import __version__
from memsweep.plan import fitted, predict
from memsweep.plan.jobs import CORE_AXES, SETTINGS, Job, bounds, unsupported_reason

# What each consumer scales with (memsweep.plan.predict.sizes), in words.
SCALES_WITH = {
    "fixed": "nothing (interpreter, libraries, warm-up)",
    "model": "one model's bytes",
    "agents": "the agents' model copies and beliefs",
    "calls": "the largest per-call temporary",
}
UNITS = {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3, "TB": 1e6}
UNITS |= {f"{prefix}IB": 1024 ** (n + 1) / 1e6 for n, prefix in enumerate("KMGT")}
# How far the agent count is searched: a predictor that still fits there says so.
MOST_AGENTS = 10**9


def parse_size(text: str) -> float:
    """``16GB``, ``16 GB``, ``500MB``, ``8GiB`` -> MB (memsweep's MB and GB: 10⁶ and 10⁹ bytes)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]+)\s*", text)
    unit = match and match.group(2).upper().removesuffix("YTES").replace("BYTE", "B")
    if not match or unit not in UNITS:
        raise ValueError(
            f"--fit-in {text!r}: expected a size with its unit, e.g. 16GB, 500MB or 8GiB"
        )
    return float(match.group(1)) * UNITS[unit]


def job_of(options: dict) -> Job:
    """The job the options name (None: not given; model settings take their default)."""
    given = {name: value for name, value in options.items() if value is not None}
    missing = ["--" + axis.replace("_", "-") for axis in CORE_AXES if axis not in given]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    job = Job.from_dict({name: given[name] for name in SETTINGS if name in given})
    reason = unsupported_reason(job)
    if reason:
        raise ValueError(
            f"unsupported configuration ({job.backend}, {job.storage}, {job.dtype}): {reason}"
        )
    return job


def peak_of(predictor: fitted.Predictor | None, upper: bool = False) -> Callable[[Job], float]:
    """A job -> its predicted peak (MB), or the upper end of its interval."""
    if predictor is None:
        return predict.predict_mb

    def peak(job: Job) -> float:
        total = fitted.total(predictor.parts(fitted.job_key(job), predict.sizes(job)))
        return total.high if upper else total.mb

    return peak


def largest(job: Job, axis: str, limit_mb: float, peak: Callable[[Job], float]) -> int | None:
    """The largest value of ``axis`` (grid or agents) at which ``peak`` of ``job`` with it
    stays within ``limit_mb``, by bisection (a peak grows with both); None: not even the
    smallest. Searched up to the setting's own maximum (agents: :data:`MOST_AGENTS`)."""
    low = int(bounds(axis).get("minimum", 1))
    high = int(bounds(axis).get("maximum", MOST_AGENTS))
    if peak(replace(job, **{axis: low})) > limit_mb:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if peak(replace(job, **{axis: middle})) <= limit_mb:
            low = middle
        else:
            high = middle - 1
    return low


def describe_job(job: Job) -> str:
    agents = f"{job.agents} agent{'s' if job.agents != 1 else ''}"
    return (
        f"{job.backend}, {job.storage}, {job.dtype}, grid {job.grid} (N={job.states}), "
        f"{agents}, {job.sharing}, policy_len {job.policy_len}"
    )


def fitted_lines(job: Job, predictor: fitted.Predictor) -> list[str]:
    sizes = predict.sizes(job)
    key = fitted.job_key(job)
    parts = predictor.parts(key, sizes)
    measured = (predictor.measured or {}).get(key, {})
    grids = ", ".join(map(str, measured.get("grids", [])))
    digest = predictor.code_digests.get(job.backend, "unknown")
    lines = [
        f"predicted by the fit in {predictor.source} (probe {predictor.probe}; "
        f"{measured.get('jobs', '?')} {job.backend} jobs measured, grids {grids}; "
        f"memsweep {predictor.memsweep_version}, code {digest})",
        f"  {'consumer':<9} {'scales with':<42} {'x MB':>12} {'predicted MB':>13}  "
        "95 % interval MB",
    ]
    for name, part in parts.items():
        lines.append(
            f"  {name:<9} {SCALES_WITH[name]:<42} {_x(name, sizes):>12} {part.mb:>13.1f}  "
            f"{_interval(part)}"
        )
    whole = fitted.total(parts)
    lines.append(f"  {'peak':<9} {'(the sum)':<42} {'':>12} {whole.mb:>13.1f}  {_interval(whole)}")
    fits = predictor.fits[fitted.job_key(job)]
    beyond = [n for n in parts if n != "fixed" and fits[n].extrapolates(sizes[n])]
    if beyond:
        lines.append(f"  note: x beyond the measured range for {', '.join(beyond)}: extrapolated")
    if predictor.memsweep_version != __version__:
        version = predictor.memsweep_version
        lines.append(f"  note: fitted by memsweep {version}, this is {__version__}")
    return lines


def _x(name: str, sizes: dict[str, float]) -> str:
    return "—" if name == "fixed" else f"{sizes[name]:.4g}"


def _interval(part: fitted.Part) -> str:
    return "—" if part.low != part.low else f"[{part.low:.1f}, {part.high:.1f}]"


def analytic_lines(job: Job, reason: str) -> list[str]:
    lines = [f"predicted by the analytic formula ({reason}); it has no interval"]
    for name, mb in predict.analytic_terms(job).items():
        lines.append(f"  {name:<13} {mb:>12.1f} MB")
    lines.append(f"  {'peak':<13} {predict.predict_mb(job):>12.1f} MB")
    return lines


def fit_in_lines(job: Job, limit_mb: float, predictor: fitted.Predictor | None) -> list[str]:
    peaks = {"predicted peak": peak_of(predictor)}
    if predictor is not None:
        peaks["interval's upper end"] = peak_of(predictor, upper=True)
    lines = [f"fits in {limit_mb:g} MB:"]
    for axis, held in (("grid", f"{job.agents} agents"), ("agents", f"grid {job.grid}")):
        found = {label: largest(job, axis, limit_mb, peak) for label, peak in peaks.items()}
        shown = "; ".join(f"{_largest_text(axis, v)} by the {label}" for label, v in found.items())
        lines.append(f"  largest {axis} with {held}: {shown}")
    return lines


def _largest_text(axis: str, value: int | None) -> str:
    if value is None:
        return "none"
    most = int(bounds(axis).get("maximum", MOST_AGENTS))
    return f"{value} or more (searched up to {most})" if value == most else str(value)


def text(options: dict, predictor_path: str | None, fit_in: str | None) -> str:
    """What ``memsweep predict`` prints. ``predictor_path`` None: the workflow's
    predictor if there is one; a path given must be a predictor."""
    job = job_of(options)
    limit = parse_size(fit_in) if fit_in is not None else None
    path = Path(predictor_path or predict.PREDICTOR)
    predictor = fitted.load(path)
    if predictor is None and predictor_path is not None:
        raise ValueError(f"--predictor {predictor_path}: no such file")
    lines = [describe_job(job)]
    if predictor is not None and predictor.covers(fitted.job_key(job)):
        lines += fitted_lines(job, predictor)
    else:
        reason = (
            f"no predictor at {path}: a sweep's predictor rule writes it"
            if predictor is None
            else f"{path} has no whole-process fit for {job.backend}"
        )
        lines += analytic_lines(job, reason)
        predictor = None
    if limit is not None:
        lines += fit_in_lines(job, limit, predictor)
    return "\n".join(lines)
