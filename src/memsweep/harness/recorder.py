"""The recorder: measured values, kept in the measured process without disturbing it."""

from __future__ import annotations

import numpy as np

from memsweep.harness import probes
from memsweep.results.schema import to_table_columns

_CODED = ("phase", "operation", "metric", "probe", "unit", "status")
# Coded text that most rows leave empty (null in the table): an allocation site.
_OPTIONAL = ("site",)
_NUMERIC = {"value": np.float64, "repeat": np.int64, "step": np.int64}
# How the reserved arrays hold a repeat or step that is not given (they cannot hold None
# without allocating per value); the table has null there.
_NOT_GIVEN = -1


class Recorder:
    """Collects measured values; the job's columns are added once, when the table is made.

    The recorder lives in the measured process, so recording must not allocate what the
    measurement would count: values go into arrays reserved (and written, so their pages
    are resident) before the baseline, text as small integer codes. A step's records
    then cost nothing that its growth or peak figures could see. ``repeat`` and
    ``step`` are None (null in the table) for a value not tied to one repeat or step.
    """

    def __init__(self, common: dict):
        self.common = common
        self._texts: dict[str, int] = {}
        self._reasons: dict[int, str] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._size = 0
        self.reserve(256)

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` more values, allocated now."""
        capacity = self._size + rows
        coded = dict.fromkeys((*_CODED, *_OPTIONAL), np.int32)
        for name, dtype in {**coded, **_NUMERIC}.items():
            column = np.full(capacity, _NOT_GIVEN, dtype=dtype)
            if name in self._arrays:
                column[: self._size] = self._arrays[name][: self._size]
            self._arrays[name] = column

    def _code(self, text: str) -> int:
        code = self._texts.get(text)
        if code is None:
            code = self._texts[text] = len(self._texts)
        return code

    def add(
        self, phase, operation, metric, reading: probes.Reading, repeat=None, step=None, site=None
    ):
        if self._size == len(self._arrays["value"]):
            self.reserve(max(256, self._size))
        index, arrays = self._size, self._arrays
        texts = (phase, operation, metric, reading.probe, reading.unit, reading.status)
        for name, text in zip(_CODED, texts, strict=True):
            arrays[name][index] = self._code(text)
        arrays["value"][index] = reading.value
        arrays["repeat"][index] = _NOT_GIVEN if repeat is None else repeat
        arrays["step"][index] = _NOT_GIVEN if step is None else step
        arrays["site"][index] = _NOT_GIVEN if site is None else self._code(site)
        if reading.reason:
            self._reasons[index] = reading.reason
        self._size += 1

    def _column(self, name: str) -> list:
        values = self._arrays[name][: self._size]
        if name in _CODED:
            names = np.array(list(self._texts), dtype=object)
            return names[values].tolist()
        if name in _OPTIONAL:
            names = list(self._texts)
            return [None if v == _NOT_GIVEN else names[v] for v in values.tolist()]
        if name == "value":
            return values.tolist()
        return [None if v == _NOT_GIVEN else v for v in values.tolist()]

    def find(self, phase: str, metric: str) -> list[dict]:
        """The rows of one phase and metric, as dicts."""
        columns = {name: self._column(name) for name in (*_CODED, *_NUMERIC)}
        return [
            {name: column[i] for name, column in columns.items()}
            for i in range(self._size)
            if columns["phase"][i] == phase and columns["metric"][i] == metric
        ]

    def table(self):
        count = self._size
        columns = {name: self._column(name) for name in (*_CODED, *_OPTIONAL, *_NUMERIC)}
        columns["reason"] = [self._reasons.get(i) for i in range(count)]
        return to_table_columns({**{k: [v] * count for k, v in self.common.items()}, **columns})

    def window(self, phase, operation, window: probes.Window, repeat=None, step=None, per=1):
        """The standard rows of one measured window (per ``per`` agents where that applies)."""
        self.add(phase, operation, "call_seconds", seconds(window.seconds / per), repeat, step)
        self.add(phase, operation, "call_peak_bytes", window.kernel_peak, repeat, step)
        if window.traced:
            self.add(phase, operation, "call_peak_bytes", window.traced_peak, repeat, step)
            self.add(phase, operation, "retained_bytes", window.traced_growth, repeat, step)


def seconds(value: float) -> probes.Reading:
    return probes.Reading(value, probes.CLOCK, unit="s")
