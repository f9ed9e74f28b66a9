"""How a value is shown: bytes, shares, seconds, missing values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def plain(value) -> str:
    if missing(value):
        return "—"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def fmt_bytes(value) -> str:
    """Decimal units, three significant figures; a negative figure keeps its sign."""
    if missing(value):
        return "—"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g} B"


def fmt_percent(value) -> str:
    return "—" if missing(value) else f"{100 * value:.1f} %"


def fmt_seconds(value) -> str:
    if missing(value):
        return "—"
    return f"{value * 1e3:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"


def fmt_mb(value) -> str:
    return "—" if missing(value) else f"{value:.1f}"


def fmt_number(value) -> str:
    return "—" if missing(value) else f"{value:.4g}"
