"""Memory consumers, ranked by measured bytes, each traced to its rows."""

from __future__ import annotations

import pandas as pd

# What holds the memory, by the phase/operation/metric that measured it.
CONSUMERS = {
    ("import", "load", "resident_bytes"): "fixed import cost of the backend's libraries",
    ("build", "model", "growth_bytes"): "the model arrays (A, B, C, D) as stored",
    ("build", "agents", "growth_bytes"): "the agents (per-agent copies and state)",
    ("step", None, "call_peak_bytes"): "per-call temporaries of an operation",
    ("compile", None, "call_peak_bytes"): "first call of an operation (compilation, caches)",
}


def consumers(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (configuration, consumer, probe): the median bytes it measured."""
    ok = frame[frame.status == "ok"]
    parts = []
    for (phase, operation, metric), what in CONSUMERS.items():
        rows = ok[(ok.phase == phase) & (ok.metric == metric)]
        if operation is not None:
            rows = rows[rows.operation == operation]
        if rows.empty:
            continue
        keys = [
            "config_id",
            "backend",
            "storage",
            "dtype",
            "grid",
            "agents",
            "sharing",
            "policy_len",
        ]
        grouped = rows.groupby([*keys, "operation", "probe"], as_index=False).value.median()
        parts.append(grouped.assign(phase=phase, metric=metric, what=what))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True).sort_values("value", ascending=False)


def top(frame: pd.DataFrame, count: int = 10) -> pd.DataFrame:
    return consumers(frame).head(count)
