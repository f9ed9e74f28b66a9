"""Scaling: log-log exponents in N (states) and in agents, with confidence intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from memsweep.harness import probes
from memsweep.report.queries import (
    CONFIG,
    FIX_AXES,
    WORLD,
    Resolution,
    per_config,
    selector,
    several_worlds,
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


@dataclass(frozen=True)
class Fit:
    """log(value) = exponent·log(x) + a per-group intercept, by least squares."""

    exponent: float
    low: float
    high: float
    points: int
    groups: int
    dropped: int  # values <= 0, which have no logarithm

    def text(self) -> str:
        if np.isnan(self.low):
            return f"{self.exponent:.2f} (no CI: {self.points} points)"
        return f"{self.exponent:.2f} [{self.low:.2f}, {self.high:.2f}]"


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
    """Exponents in N (one intercept per agent count) and in agents (one per grid), each
    within one world: the states of two worlds (a grid's G², a T-maze's 5) are no
    scale of one model."""
    table = with_world(table)
    return {
        "states": fit_exponent(table, "states", ["agents", WORLD]),
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
    shown = [*FIX_AXES, WORLD] if several_worlds(frame) else list(FIX_AXES)
    for parts in SCALED:
        table = with_world(per_config(frame, selector(*parts), resolution))
        table = table[table.value.notna() & table.resolved.astype(bool)]
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
