"""Memory, time and GC probes. Every reading names the probe that made it.

Each probe is one class in :data:`REGISTRY` (``@register``), declaring what it sees,
the rows it writes and whether it ranks memory consumers; the harness, the report's
consumers and its figures iterate over the registry. :class:`Window` measures one
call (time, traced peak, kernel peak); :func:`calibrate` checks every probe against
allocations of known size.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import ClassVar

import psutil

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


# The registry ---------------------------------------------------------------------------
class Probe:
    """One way of reading memory or time; every reading names its probe.

    A subclass declares what the rest of memsweep needs to know of it, once: the
    harness reads every *level* probe between windows (``level_metric`` names its rows:
    ``{level_metric}_bytes``, ``{level_metric}_growth_per_100_steps_bytes``), the report
    ranks consumers under every probe with a ``rank`` (lower breaks ties first), and
    ``peak`` probes measure each window's peak (``call_peak_bytes``).
    """

    name: ClassVar[str]
    sees: ClassVar[str]  # what it can and cannot see, in one sentence (for the report)
    unit: ClassVar[str] = "B"
    level_metric: ClassVar[str | None] = None
    peak: ClassVar[bool] = False
    rank: ClassVar[int | None] = None
    # Its level figures enter a job's summary rows (per-agent bytes).
    summarised: ClassVar[bool] = True

    @classmethod
    def read(cls) -> Reading:
        raise NotImplementedError(f"{cls.name} is not read as a level")


REGISTRY: dict[str, type[Probe]] = {}


def register(probe: type[Probe]) -> type[Probe]:
    if probe.name in REGISTRY:
        raise ValueError(f"probe {probe.name!r} is registered twice")
    REGISTRY[probe.name] = probe
    return probe


def levels() -> tuple[type[Probe], ...]:
    """Probes read as levels between windows, in registration order."""
    return tuple(p for p in REGISTRY.values() if p.level_metric)


def ranking() -> tuple[str, ...]:
    """Probes that rank memory consumers, in tie-break order."""
    ranked = [p for p in REGISTRY.values() if p.rank is not None]
    return tuple(p.name for p in sorted(ranked, key=lambda p: p.rank))


def peaks() -> tuple[str, ...]:
    """Probes that measure the peak of a window."""
    return tuple(p.name for p in REGISTRY.values() if p.peak)


@register
class Traced(Probe):
    name = "tracemalloc"
    sees = "Python objects and numpy buffers, exactly; blind to XLA's buffers and most C libraries"
    level_metric = "traced"
    peak = True
    rank = 3

    @classmethod
    def read(cls) -> Reading:
        return Reading(float(tracemalloc.get_traced_memory()[0]), cls.name)


@register
class Anonymous(Probe):
    name = "rss_anon"
    sees = (
        "anonymous resident pages (heap, mmap'd arrays, XLA buffers), no library pages; "
        "blind to a temporary that reuses pages already resident"
    )
    level_metric = "anon"
    rank = 1

    @classmethod
    def read(cls) -> Reading:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("RssAnon:"):
                    return Reading(float(int(line.split()[1]) * 1024), cls.name)
        return Reading(float("nan"), cls.name, status="unavailable", reason="no RssAnon line")


@register
class Unique(Probe):
    name = "psutil_uss"
    sees = (
        "pages only this process holds, JAX included; also moves when other processes map "
        "or unmap the same libraries"
    )
    level_metric = "resident"
    rank = 2
    # Not in the summary: it moves by whole library mappings when other processes start
    # or stop, more than a shared agent's few KB (it is still in the build rows).
    summarised = False

    @classmethod
    def read(cls) -> Reading:
        return Reading(float(_PROCESS.memory_full_info().uss), cls.name)


@register
class Resident(Probe):
    name = "psutil_rss"
    sees = "resident pages, shared libraries included"

    @classmethod
    def read(cls) -> Reading:
        return Reading(float(_PROCESS.memory_info().rss), cls.name)


@register
class HighWaterMark(Probe):
    name = "vmhwm"
    sees = (
        "the kernel's peak resident set over a window (reset through clear_refs): what a "
        "memory limit sees; blind to a temporary that reuses pages already resident"
    )
    peak = True
    rank = 0


@register
class Device(Probe):
    name = "jax_memory_stats"
    sees = "an accelerator allocator's own counters (GPU/TPU), which process probes cannot see"


@register
class XlaMemoryAnalysis(Probe):
    name = "xla_memory_analysis"
    sees = (
        "XLA's own plan for one compiled program (arguments, outputs, aliases, scratch "
        "temporaries, generated code), exact by construction and read without running it"
    )


@register
class GcCallbacks(Probe):
    name = "gc_callbacks"
    sees = (
        "collections per generation and their pause time (gc.callbacks); the objects "
        "frozen at the baseline (gc.get_freeze_count)"
    )
    unit = "count"


@register
class Clock(Probe):
    name = "perf_counter"
    sees = "wall time"
    unit = "s"


@register
class Supervisor(Probe):
    name = "supervisor"
    sees = (
        "the resident memory of the job's process tree, polled from outside every 20 ms, "
        "and the child's lifetime peak checked after it exits (a job's job_peak_bytes)"
    )


@register
class ReferenceTrace(Probe):
    name = "reference_trace"
    sees = "a variant's beliefs and actions against the float64 dense PyMDP reference's"
    unit = "1"


@register
class Memray(Probe):
    name = "memray"
    sees = (
        "every allocation through malloc and its kin, Python's, numpy's and XLA's alike, "
        "with its Python and native stack (a profile run: memsweep profile); the live "
        "allocations at the heap's high-water mark, not resident pages"
    )


@register
class Exact(Probe):
    name = "nbytes"
    sees = "arithmetic on the arrays' sizes (not a reading): the model's exact bytes"


TRACEMALLOC = Traced.name
USS = Unique.name
RSS = Resident.name
ANON = Anonymous.name
VMHWM = HighWaterMark.name
GC = GcCallbacks.name
DEVICE = Device.name
XLA = XlaMemoryAnalysis.name
CLOCK = Clock.name
EXACT = Exact.name
REFERENCE = ReferenceTrace.name
MEMRAY = Memray.name


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
        self._rss_start = Resident.read().value
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
