"""Memory, time and GC probes. Every reading names the probe that made it.

Which probe sees what:

* ``tracemalloc``: Python objects and numpy buffers (numpy reports its data
  allocations to tracemalloc). Blind to XLA buffers and most C libraries.
* ``psutil_uss``: pages only this process holds (from ``/proc/self/smaps``).
  Sees everything, JAX included; reads are a few ms on a large process.
* ``psutil_rss``: resident pages, shared libraries included.
* ``vmhwm``: the kernel's peak RSS (``VmHWM``). Writing ``5`` to
  ``/proc/self/clear_refs`` resets it, so the peak of a window is visible even
  when a temporary is freed before anyone could sample it.
* ``gc_callbacks``: collections per generation and their pause time.
* ``perf_counter``: wall time.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from dataclasses import dataclass, field

import psutil

TRACEMALLOC = "tracemalloc"
USS = "psutil_uss"
RSS = "psutil_rss"
VMHWM = "vmhwm"
GC = "gc_callbacks"
CLOCK = "perf_counter"
EXACT = "nbytes"  # arithmetic on array sizes, not a reading
DERIVED = "derived"  # computed from other rows (a ratio, a fit)

_PROCESS = psutil.Process()


@dataclass(frozen=True)
class Reading:
    value: float
    probe: str
    unit: str = "B"
    status: str = "ok"
    reason: str | None = None


def settle() -> None:
    """Collect garbage so that a reading sees live memory only."""
    gc.collect()


def uss() -> Reading:
    return Reading(float(_PROCESS.memory_full_info().uss), USS)


def rss() -> Reading:
    return Reading(float(_PROCESS.memory_info().rss), RSS)


class KernelPeak:
    """The kernel's peak RSS over a window (VmHWM after a clear_refs reset)."""

    def __init__(self):
        self.reason = None
        try:
            self.reset()
        except OSError as error:
            self.reason = f"cannot reset VmHWM via /proc/self/clear_refs: {error}"

    @property
    def available(self) -> bool:
        return self.reason is None

    def reset(self) -> None:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")

    def read(self) -> Reading:
        if not self.available:
            return Reading(float("nan"), VMHWM, status="unavailable", reason=self.reason)
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return Reading(float(int(line.split()[1]) * 1024), VMHWM)
        return Reading(float("nan"), VMHWM, status="unavailable", reason="no VmHWM line")


class Heap:
    """tracemalloc: current and peak traced bytes, with a resettable peak."""

    def start(self) -> Heap:
        if not tracemalloc.is_tracing():
            tracemalloc.start()
        return self

    @staticmethod
    def current() -> Reading:
        return Reading(float(tracemalloc.get_traced_memory()[0]), TRACEMALLOC)

    @staticmethod
    def peak() -> Reading:
        return Reading(float(tracemalloc.get_traced_memory()[1]), TRACEMALLOC)

    @staticmethod
    def reset_peak() -> None:
        tracemalloc.reset_peak()

    @staticmethod
    def stop() -> None:
        tracemalloc.stop()


@dataclass
class GcMonitor:
    """Counts collections per generation and their pause time while installed.

    Only collections that happen while ``counting`` is true are counted: the
    harness's own ``gc.collect()`` calls between readings are not the agent's.
    """

    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    pause_seconds: float = 0.0
    counting: bool = True
    _started: float | None = None

    def _callback(self, phase: str, info: dict) -> None:
        if not self.counting:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif phase == "stop" and self._started is not None:
            self.pause_seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1
            self._started = None

    def __enter__(self) -> GcMonitor:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self._callback)


class Window:
    """One measured window: time, traced peak and kernel peak above its start.

    ``with Window(peak) as w: work()`` then ``w.seconds``, ``w.traced_peak``
    (tracemalloc peak above the traced bytes at the start), ``w.traced_growth``
    and ``w.kernel_peak`` (VmHWM above RSS at the start).
    """

    def __init__(self, kernel_peak: KernelPeak, traced: bool = True):
        self.kernel = kernel_peak
        self.traced = traced and tracemalloc.is_tracing()

    def __enter__(self) -> Window:
        if self.traced:
            Heap.reset_peak()
            self._traced_start = Heap.current().value
        self._rss_start = rss().value
        if self.kernel.available:
            self.kernel.reset()
        self._clock = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._clock
        peak = self.kernel.read()
        self.kernel_peak = Reading(
            max(peak.value - self._rss_start, 0.0), VMHWM, status=peak.status, reason=peak.reason
        )
        if self.traced:
            self.traced_peak = Reading(Heap.peak().value - self._traced_start, TRACEMALLOC)
            self.traced_growth = Reading(Heap.current().value - self._traced_start, TRACEMALLOC)


def calibrate(sizes_mb=(8, 64, 256)) -> list[dict]:
    """Allocate and touch arrays of known size; compare each probe with the truth.

    Returns one row per probe and size: ``probe``, ``requested_bytes``,
    ``measured_bytes``, ``error_fraction``.
    """
    import numpy as np

    heap = Heap().start()
    kernel = KernelPeak()
    rows = []
    for size_mb in sizes_mb:
        requested = size_mb * 1_000_000
        settle()
        traced0, uss0, rss0 = heap.current().value, uss().value, rss().value
        if kernel.available:
            kernel.reset()
        block = np.ones(requested // 8)  # np.ones writes every page: all of it is resident
        measured = {
            TRACEMALLOC: heap.current().value - traced0,
            USS: uss().value - uss0,
            RSS: rss().value - rss0,
            VMHWM: kernel.read().value - rss0,
        }
        del block
        settle()
        for probe, value in measured.items():
            rows.append(
                {
                    "probe": probe,
                    "requested_bytes": requested,
                    "measured_bytes": value,
                    "error_fraction": (value - requested) / requested,
                }
            )
    return rows
