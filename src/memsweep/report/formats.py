"""How a value is shown: bytes, shares, seconds, missing values."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Unresolved:
    """A figure below its probe's resolution (bytes): shown as ``< 1 MB``, and not a
    number, so that nothing ranks, subtracts or divides it by mistake."""

    resolution: float

    def __str__(self) -> str:
        if math.isinf(self.resolution):
            return "below resolution (at every calibrated size)"
        return f"< {fmt_bytes(self.resolution)}"


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def plain(value) -> str:
    if missing(value):
        return "—"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def fmt_bytes(value) -> str:
    """Decimal units, three significant figures; a negative figure keeps its sign; a
    figure below its probe's resolution as ``< 1 MB``; less than a byte as ``< 1 B``,
    never in scientific notation; text as it is."""
    if missing(value):
        return "—"
    if isinstance(value, Unresolved | str):
        return str(value)
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    if value and abs(value) < 1:  # a slope or a median of bytes: no fraction of a byte
        return "< 1 B" if value > 0 else "> -1 B"
    return f"{value:.3g} B"


def fmt_percent(value) -> str:
    if isinstance(value, str):  # text (why there is no share) as it is
        return value
    return "—" if missing(value) else f"{100 * value:.1f} %"


def fmt_seconds(value) -> str:
    if missing(value):
        return "—"
    return f"{value * 1e3:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"


def fmt_mb(value) -> str:
    return "—" if missing(value) else f"{value:.1f}"


def fmt_number(value) -> str:
    return "—" if missing(value) else f"{value:.4g}"
