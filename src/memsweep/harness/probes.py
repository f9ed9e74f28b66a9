"""Memory, time and GC probes. Every reading names the probe that made it.

Which probe sees what:

* ``tracemalloc``: Python objects and numpy buffers (numpy reports its data
  allocations to tracemalloc). Blind to XLA buffers and most C libraries.
* ``psutil_uss``: pages only this process holds (from ``/proc/self/smaps``).
  Sees everything, JAX included; reads are a few ms on a large process.
* ``psutil_rss``: resident pages, shared libraries included.
* ``rss_anon``: anonymous resident pages (``RssAnon`` in ``/proc/self/status``):
  heap, mmap'd arrays and XLA buffers, but no library pages, so unlike USS it
  does not move when another process maps the same libraries.
* ``vmhwm``: the kernel's peak RSS (``VmHWM``). Writing ``5`` to
  ``/proc/self/clear_refs`` resets it, so the peak of a window is visible even
  when a temporary is freed before anyone could sample it.
* ``jax_memory_stats``: an accelerator's own allocator counters (bytes in use, peak),
  read through ``jax.Device.memory_stats()``; only on a GPU/TPU, which process probes
  cannot see.
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
ANON = "rss_anon"
VMHWM = "vmhwm"
GC = "gc_callbacks"
DEVICE = "jax_memory_stats"
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


def rss_anon() -> Reading:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("RssAnon:"):
                return Reading(float(int(line.split()[1]) * 1024), ANON)
    return Reading(float("nan"), ANON, status="unavailable", reason="no RssAnon line")


def rss() -> Reading:
    return Reading(float(_PROCESS.memory_info().rss), RSS)


def _vmhwm() -> float | None:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return float(int(line.split()[1]) * 1024)
    return None


class KernelPeak:
    """The kernel's peak RSS over a window (VmHWM after a clear_refs reset).

    A reset ends one window and starts the next; the peak of every window since
    :meth:`restart` is kept, so :meth:`overall` is the peak across all of them.
    """

    def __init__(self):
        self.reason = None
        self._highest = 0.0
        try:
            self.reset()
        except OSError as error:
            self.reason = f"cannot reset VmHWM via /proc/self/clear_refs: {error}"

    @property
    def available(self) -> bool:
        return self.reason is None

    def reset(self) -> None:
        self._highest = max(self._highest, _vmhwm() or 0.0)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")

    def restart(self) -> None:
        """Start a new window and forget the peaks before it (also for :meth:`overall`)."""
        self.reset()
        self._highest = 0.0

    def read(self) -> Reading:
        """The peak since the last reset."""
        if not self.available:
            return Reading(float("nan"), VMHWM, status="unavailable", reason=self.reason)
        value = _vmhwm()
        if value is None:
            return Reading(float("nan"), VMHWM, status="unavailable", reason="no VmHWM line")
        return Reading(value, VMHWM)

    def overall(self) -> Reading:
        """The peak since :meth:`restart` (or creation), across every reset in between."""
        now = self.read()
        if now.status != "ok":
            return now
        return Reading(max(now.value, self._highest), VMHWM)


class Heap:
    """tracemalloc: current and peak traced bytes, with a resettable peak.

    As for :class:`KernelPeak`, :meth:`reset_peak` keeps the peak it discards, so
    :meth:`overall_peak` is the peak since :meth:`restart` across every reset.
    """

    _highest = 0.0

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

    @classmethod
    def reset_peak(cls) -> None:
        cls._highest = max(cls._highest, float(tracemalloc.get_traced_memory()[1]))
        tracemalloc.reset_peak()

    @classmethod
    def restart(cls) -> None:
        """Reset the peak and forget the peaks before now (also for :meth:`overall_peak`)."""
        tracemalloc.reset_peak()
        cls._highest = 0.0

    @classmethod
    def overall_peak(cls) -> Reading:
        peak = max(cls._highest, float(tracemalloc.get_traced_memory()[1]))
        return Reading(peak, TRACEMALLOC)

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
        # Order matters: reading /proc allocates (file buffers, psutil objects), so the
        # process probes go first and the traced window opens last, closing first.
        self._rss_start = rss().value
        if self.kernel.available:
            self.kernel.reset()
        if self.traced:
            Heap.reset_peak()
            self._traced_start = tracemalloc.get_traced_memory()[0]
        self._clock = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._clock
        if self.traced:
            current, peak = tracemalloc.get_traced_memory()
            self.traced_peak = Reading(float(peak - self._traced_start), TRACEMALLOC)
            self.traced_growth = Reading(float(current - self._traced_start), TRACEMALLOC)
        peak = self.kernel.read()
        self.kernel_peak = Reading(
            max(peak.value - self._rss_start, 0.0), VMHWM, status=peak.status, reason=peak.reason
        )


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
        anon0 = rss_anon().value
        if kernel.available:
            kernel.reset()
        block = np.ones(requested // 8)  # np.ones writes every page: all of it is resident
        measured = {
            TRACEMALLOC: heap.current().value - traced0,
            USS: uss().value - uss0,
            ANON: rss_anon().value - anon0,
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
