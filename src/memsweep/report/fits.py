"""Scaling: exponents in N (states) and in agents, with confidence intervals.

In N, a law ``a + b·N^k`` (:func:`fit_law`) where a slice has the sizes for it: a fixed
floor (the interpreter, a library's buffers) does not bend the exponent of what grows
with N, as it does a pure power law's (private model copies that grow as N² read as
N^0.5 on a log-log line over a floor). Elsewhere, and in agents (a sweep has two or three
counts), the pooled log-log slope."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from memsweep.harness import probes
from memsweep.report.fixes import blind_probes
from memsweep.report.queries import (
    CONFIG,
    WORLD,
    Resolution,
    per_config,
    selector,
    shown_axes,
    slice_of,
    with_world,
)

# The whole-configuration figures whose scaling the report tabulates.
SCALED = (
    ("summary", "all", "peak_bytes", probes.VMHWM),
    ("summary", "all", "peak_bytes", probes.TRACEMALLOC),
    ("summary", "all", "model_bytes", probes.EXACT),
    ("summary", "all", "per_agent_bytes", probes.TRACEMALLOC),
    ("summary", "all", "per_agent_bytes", probes.ANON),
    ("summary", "all", "step_seconds", probes.CLOCK),
)
# The columns that vary within one slice of the scaling table.
SLICE_FREE = ("config_id", "grid", "states", "agents")
# Whole exponents with a name of their own (the shape of memory that scales so).
SHAPES = {
    ("N", 0): "does not grow with N",
    ("N", 1): "linear in N (vectors, sparse storage)",
    ("N", 2): "∝ N² (an N×N array or temporary)",
    ("agents", 0): "does not grow with the number of agents",
    ("agents", 1): "∝ agents (each agent holds its own)",
}


LOG_LOG, LAW = "log-log", "a + b·N^k"
LAW_POINTS = 4  # a law has three parameters: four sizes leave one degree of freedom for a CI
K_RANGE = (-3.0, 3.0)  # a law's exponent: zero fractions fall as 1/N, model bytes grow as N²


@dataclass(frozen=True)
class Fit:
    """An exponent with its 95 % CI: a log-log slope (log(value) = exponent·log(x) + a
    per-group intercept) or the ``k`` of a law ``a + b·x^k`` (``form``)."""

    exponent: float
    low: float
    high: float
    points: int
    groups: int
    dropped: int  # values <= 0, which have no logarithm
    form: str = LOG_LOG

    def text(self) -> str:
        form = "" if self.form == LOG_LOG else f", {self.form}"
        if np.isnan(self.low):
            return f"{self.exponent:.2f} (no CI: {self.points} points{form})"
        return f"{self.exponent:.2f} [{self.low:.2f}, {self.high:.2f}]" + (
            f" ({self.form})" if form else ""
        )


@dataclass(frozen=True)
class Law:
    """``a + b·x^k`` fitted by least squares, with what an interval needs."""

    a: float
    b: float
    k: float
    covariance: np.ndarray  # of (a, b, k)
    residual_variance: float
    t: float | None  # Student's t at 95 % for its degrees of freedom; None without any
    x_range: tuple[float, float]
    points: int

    def k_interval(self) -> tuple[float, float]:
        spread = float(self.covariance[2, 2])
        if self.t is None or not np.isfinite(spread) or spread < 0:
            return (np.nan, np.nan)
        half = self.t * np.sqrt(spread)
        return (self.k - half, self.k + half)


def _linear_part(x: np.ndarray, y: np.ndarray, k: float) -> tuple[float, float, float]:
    """For a fixed exponent the law is linear in a and b: their least squares and its cost."""
    design = np.column_stack([np.ones_like(x), np.power(x, k)])
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ (a, b)
    return float(a), float(b), float(residuals @ residuals)


def fit_law(x, y, k_range: tuple[float, float] = K_RANGE) -> Law | None:
    """``a + b·x^k`` through the points (x > 0) by least squares, or None with fewer than
    three distinct x.

    For a fixed k, a and b are a linear least-squares problem, so the fit is a search over
    k alone (variable projection): a scan of ``k_range`` finds the basin of the least cost
    (the cost has several minima, on either side of 0), then a bounded search refines it.
    A generic solver on (a, b, k) took 0.1 s a start, with six starts for the basins: most
    of the report's time. The covariance is the one ``curve_fit`` gives: the inverse of
    JᵀJ at the optimum, scaled by the residual variance."""
    from scipy import optimize

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or len(np.unique(x)) < 3:
        return None
    scan = np.linspace(*k_range, 241)
    costs = [_linear_part(x, y, k)[2] for k in scan]
    best = int(np.argmin(costs))
    low, high = scan[max(best - 1, 0)], scan[min(best + 1, len(scan) - 1)]
    found = optimize.minimize_scalar(
        lambda k: _linear_part(x, y, k)[2], bounds=(low, high), method="bounded",
        options={"xatol": 1e-10},
    )  # fmt: skip
    k = float(found.x) if found.fun <= costs[best] else float(scan[best])
    a, b, cost = _linear_part(x, y, k)
    dof = len(y) - 3
    power = np.power(x, k)
    jacobian = np.column_stack([np.ones_like(x), power, b * power * np.log(x)])
    if dof > 0:
        # (JᵀJ)⁻¹ from J's columns scaled to unit length: a, b and k differ by ten orders
        # of magnitude, and JᵀJ unscaled loses k's variance to rounding.
        scale = np.linalg.norm(jacobian, axis=0)
        scale[scale == 0] = 1.0
        inverse = np.linalg.pinv((jacobian / scale).T @ (jacobian / scale))
        covariance = inverse / np.outer(scale, scale) * (cost / dof)
    else:  # as curve_fit: no degrees of freedom, no covariance
        covariance = np.full((3, 3), np.inf)
    t = float(stats.t.ppf(0.975, dof)) if dof > 0 else None
    return Law(
        a,
        b,
        k,
        covariance,
        cost / dof if dof > 0 else 0.0,
        t,
        (float(x.min()), float(x.max())),
        len(y),
    )


def law_exponent(table: pd.DataFrame, x: str, by: list[str]) -> Fit | None:
    """The ``k`` of ``a + b·x^k`` in the group of ``by`` with the most distinct ``x`` (the
    most agents among equals), where one has :data:`LAW_POINTS`; None elsewhere."""
    data = table[[x, "value", *by]].dropna()
    best = None
    for _, group in data.groupby(by):
        sizes = group[x].nunique()
        if sizes < LAW_POINTS:
            continue
        key = (sizes, *(group[column].iloc[0] for column in by if column == "agents"))
        if best is None or key > best[0]:
            best = (key, group)
    if best is None:
        return None
    group = best[1]
    law = fit_law(group[x], group.value)
    if law is None:
        return None
    low, high = law.k_interval()
    return Fit(law.k, low, high, len(group), 1, 0, LAW)


def fit_exponent(table: pd.DataFrame, x: str, by: list[str] | None = None) -> Fit | None:
    """Log-log slope of ``value`` against ``x``, 95 % CI from the t distribution.

    Rows are grouped by ``by`` (the other axes that vary): each group gets its own
    intercept, so the slope is only estimated from changes of ``x`` within a group.
    None when no group holds two distinct ``x``.
    """
    data = table[[x, "value", *(by or [])]].dropna()
    positive = data[data.value > 0]
    dropped = len(data) - len(positive)
    groups = positive.groupby(by) if by else [((), positive)]
    xs, ys, used = [], [], 0
    for _, group in groups:
        if group[x].nunique() < 2:
            continue
        lx, ly = np.log(group[x].to_numpy(float)), np.log(group.value.to_numpy(float))
        xs.append(lx - lx.mean())
        ys.append(ly - ly.mean())
        used += 1
    if not used:
        return None
    lx, ly = np.concatenate(xs), np.concatenate(ys)
    # Centred within groups, the data's overall means are zero: the least-squares line
    # passes through the origin and its slope is the pooled within-group slope.
    slope = float(stats.linregress(lx, ly).slope)
    dof = len(lx) - used - 1
    if dof < 1:
        return Fit(slope, np.nan, np.nan, len(lx), used, dropped)
    residual = ly - slope * lx
    stderr = np.sqrt(residual @ residual / dof / (lx @ lx))
    half = stats.t.ppf(0.975, dof) * stderr
    return Fit(slope, slope - half, slope + half, len(lx), used, dropped)


def exponents(table: pd.DataFrame) -> dict[str, Fit | None]:
    """Exponents in N (a law over the sizes of one agent count where it has four, else a
    log-log slope with one intercept per agent count) and in agents (one per grid), each
    within one world: the states of two worlds (a grid's G², a T-maze's 5) are no
    scale of one model."""
    table = with_world(table)
    return {
        "states": law_exponent(table, "states", ["agents", WORLD])
        or fit_exponent(table, "states", ["agents", WORLD]),
        "agents": fit_exponent(table, "agents", ["states", WORLD]),
    }


def scaling(table: pd.DataFrame, base: pd.Series) -> dict[str, Fit | None]:
    """Exponents in N and in agents, in the slice of ``base``'s other settings."""
    return exponents(slice_of(table, base, ("grid", "agents")))


def fit_text(fit: Fit | None) -> str:
    return "not fitted" if fit is None else fit.text()


def reading(fit: Fit | None, axis: str) -> str:
    """The nearest whole exponent the fit cannot tell apart from its estimate, in words."""
    if fit is None:
        return f"not fitted in {axis} (fewer than two measured values)"
    if not math.isnan(fit.low) and fit.high - fit.low > 1:
        return f"scaling in {axis} not determined (the 95 % CI is wider than 1)"
    whole = round(fit.exponent)
    within = (
        fit.low <= whole <= fit.high
        if not math.isnan(fit.low)
        else abs(fit.exponent - whole) < 0.25
    )
    if not within:
        return f"∝ {axis}^{fit.exponent:.2f}"
    return SHAPES.get((axis, whole), f"∝ {axis}^{whole}")


def _fit_value(fit: Fit | None) -> float:
    return np.nan if fit is None else round(fit.exponent, 3)


def scaling_table(frame: pd.DataFrame, resolution: Resolution | None = None) -> pd.DataFrame:
    """Exponents in N and in agents per slice (every setting but grid and agents fixed,
    the world too), from the figures at or above their probe's ``resolution`` (probe ->
    bytes) only. A sweep of several worlds names each slice's world."""
    out = []
    shown = shown_axes(frame.drop_duplicates("config_id"))
    for parts in SCALED:
        table = with_world(per_config(frame, selector(*parts), resolution))
        table = table[table.value.notna() & table.resolved.astype(bool)]
        # A probe blind to a backend (tracemalloc to JAX's buffers) fits nothing of it.
        table = table[~table.backend.map(lambda b, probe=parts[3]: probe in blind_probes(b))]
        if table.empty:
            continue
        slice_columns = [c for c in CONFIG if c in table and c not in SLICE_FREE]
        for _, group in table.groupby(slice_columns, dropna=False):
            first = group.iloc[0]
            fits = exponents(group)
            out.append(
                {
                    **{axis: first[axis] for axis in shown},
                    "quantity": f"{parts[2]} [{parts[3]}]",
                    "exponent_N": _fit_value(fits["states"]),
                    "N_CI": fit_text(fits["states"]),
                    "exponent_agents": _fit_value(fits["agents"]),
                    "agents_CI": fit_text(fits["agents"]),
                    "configs": len(group),
                    "nonpositive": int((group.value <= 0).sum()),
                }
            )
    return pd.DataFrame(out)
