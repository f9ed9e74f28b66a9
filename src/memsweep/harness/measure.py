"""One configuration -> one tidy table of measurements. Runs inside the job's own process.

The order of a measurement, and what each phase sees:

1. ``import``: the backend's libraries (a fixed per-process cost).
   Then the post-import baseline: every later figure is above it.
2. ``build``: the model (operation ``model``), then the agents (``agents``).
   ``model`` rows give the exact bytes of A, B, C, D and their zero fraction.
3. ``compile``: the first call of each operation (JAX traces and compiles
   here; numpy fills its caches), kept apart from the steady state.
4. ``step``: every later call of each operation, per step and repeat: wall
   time per agent, traced peak and kernel peak above the call's start, traced
   bytes retained. Raw values are kept; medians are derived in ``summary``.
5. ``growth``: memory after each step of the first repeat, and its slope.
6. ``gc``: collections and pause time over the steps.
7. ``precision``: the first repeat's beliefs against the reference trace, scored step by step.
8. ``cleanup``: the fraction of memory released when the agents are dropped.

Every value is read after ``gc.collect()`` where it is a level (not a peak),
and names its probe.
"""

from __future__ import annotations

import datetime
import platform
import socket
import statistics
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from memsweep import __version__
from memsweep.agents import StepInput, get
from memsweep.harness import precision as precision_metrics
from memsweep.harness import probes
from memsweep.harness.reference import Reference
from memsweep.plan.jobs import Job
from memsweep.results.schema import to_table_columns
from memsweep.world.gridworld import GridWorld

PhaseHook = Callable[[str], None]


def provenance(backend_name: str) -> dict:
    """Versions, host and start time: recorded in every row of a job's table."""
    from importlib.metadata import PackageNotFoundError, version

    def maybe(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    return {
        "memsweep_version": __version__,
        "pymdp_version": maybe("inferactively-pymdp"),
        "numpy_version": np.__version__,
        "scipy_version": maybe("scipy"),
        "jax_version": maybe("jax") if "jax" in backend_name else None,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


_CODED = ("phase", "operation", "metric", "probe", "unit", "status")
_NUMERIC = {"value": np.float64, "repeat": np.int64, "step": np.int64}
# Rows one step can add: up to 4 operations × 4 window rows, plus 3 growth levels.
ROWS_PER_STEP = 19


class Recorder:
    """Collects measured values; the job's columns are added once, when the table is made.

    The recorder lives in the measured process, so recording must not allocate what the
    measurement would count: values go into arrays reserved (and written, so their pages
    are resident) before the baseline, text as small integer codes. A step's records
    then cost nothing that its growth or peak figures could see.
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
        for name, dtype in {**dict.fromkeys(_CODED, np.int32), **_NUMERIC}.items():
            column = np.full(capacity, -1, dtype=dtype)
            if name in self._arrays:
                column[: self._size] = self._arrays[name][: self._size]
            self._arrays[name] = column

    def _code(self, text: str) -> int:
        code = self._texts.get(text)
        if code is None:
            code = self._texts[text] = len(self._texts)
        return code

    def add(self, phase, operation, metric, reading: probes.Reading, repeat=-1, step=-1):
        if self._size == len(self._arrays["value"]):
            self.reserve(max(256, self._size))
        index, arrays = self._size, self._arrays
        texts = (phase, operation, metric, reading.probe, reading.unit, reading.status)
        for name, text in zip(_CODED, texts, strict=True):
            arrays[name][index] = self._code(text)
        arrays["value"][index] = reading.value
        arrays["repeat"][index] = repeat
        arrays["step"][index] = step
        if reading.reason:
            self._reasons[index] = reading.reason
        self._size += 1

    def _column(self, name: str) -> list:
        values = self._arrays[name][: self._size]
        if name in _CODED:
            names = np.array(list(self._texts), dtype=object)
            return names[values].tolist()
        return values.tolist()

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
        columns = {name: self._column(name) for name in (*_CODED, *_NUMERIC)}
        columns["reason"] = [self._reasons.get(i) for i in range(count)]
        return to_table_columns({**{k: [v] * count for k, v in self.common.items()}, **columns})

    def window(self, phase, operation, window: probes.Window, repeat=-1, step=-1, per=1):
        """The standard rows of one measured window (per ``per`` agents where that applies)."""
        self.add(phase, operation, "call_seconds", _seconds(window.seconds / per), repeat, step)
        self.add(phase, operation, "call_peak_bytes", window.kernel_peak, repeat, step)
        if window.traced:
            self.add(phase, operation, "call_peak_bytes", window.traced_peak, repeat, step)
            self.add(phase, operation, "retained_bytes", window.traced_growth, repeat, step)


def _seconds(value: float) -> probes.Reading:
    return probes.Reading(value, probes.CLOCK, unit="s")


# Levels read between windows: the Python heap (tracemalloc), the pages only this
# process holds (USS), and its anonymous resident pages (RssAnon). USS also counts
# library pages while no other process maps them, so it moves when other jobs start
# or stop; RssAnon (heap, mmap'd arrays, XLA buffers) does not.
LEVELS = ("traced", "uss", "anon")


def _levels() -> dict[str, probes.Reading]:
    """Traced and unique bytes now, after a collection."""
    probes.settle()
    return {"traced": probes.Heap.current(), "uss": probes.uss(), "anon": probes.rss_anon()}


def _growth(before: dict, after: dict, per: int = 1) -> list[tuple[str, probes.Reading]]:
    return [
        (key, probes.Reading((after[key].value - before[key].value) / per, after[key].probe))
        for key in LEVELS
    ]


def measure(job: Job, reference: Reference, on_phase: PhaseHook = lambda phase: None) -> object:
    """Measure ``job`` in this process; returns a pyarrow table in the canonical schema."""
    world, spec = job.world(), job.agent_spec()
    reference.check_matches(world, job.policy_len, job.steps)
    backend = get(job.backend)
    reason = backend.unsupported_reason(spec)
    if reason:
        raise ValueError(f"unsupported configuration: {reason}")

    kernel = probes.KernelPeak()
    on_phase("import")
    # USS and RssAnon only: tracing an import makes it several times slower, and its
    # cost is the process's, not the Python heap's.
    record = Recorder({**job.columns(), **provenance(job.backend), "layout": None})
    before = _levels()
    for operation, work in (("load", backend.load), ("warm_up", lambda: _warm_up(backend, spec))):
        with probes.Window(kernel, traced=False) as window:
            work()
        after = _levels()
        record.add("import", operation, "seconds", _seconds(window.seconds))
        for key, reading in _growth(before, after):
            if key != "traced":
                name = "anon_bytes" if key == "anon" else "resident_bytes"
                record.add("import", operation, name, reading)
        before = after
    record.reserve(job.repeats * job.steps * ROWS_PER_STEP)
    heap = probes.Heap().start()

    # Post-import baseline: the process peak is measured from here, across every window
    # (each window resets the peaks; ``overall`` keeps the highest of them).
    baseline = _levels()
    baseline_rss = probes.rss().value
    if kernel.available:
        kernel.restart()
    heap.restart()

    on_phase("build")
    with probes.Window(kernel) as window:
        model = backend.build_model(world, spec)
    built_model = _levels()
    record.window("build", "model", window)
    for _key, reading in _growth(baseline, built_model):
        record.add("build", "model", "growth_bytes", reading)
    model_bytes = model.nbytes()
    for name, size in model_bytes.items():
        record.add("model", name, "bytes", probes.Reading(size, probes.EXACT))
    for name, fraction in model.zero_fraction().items():
        record.add("model", name, "zero_fraction", probes.Reading(fraction, probes.EXACT, unit="1"))

    with probes.Window(kernel) as window:
        population = backend.build_agents(model, spec)
    built = _levels()
    record.window("build", "agents", window)
    for _key, reading in _growth(built_model, built):
        record.add("build", "agents", "growth_bytes", reading)
    agent_growth = _growth(built_model, built, per=job.agents)
    for _key, reading in agent_growth:
        record.add("build", "agents", "per_agent_bytes", reading)
    record.common["layout"] = population.layout
    _device_rows(record, population, "build", "agents")

    step_seconds = []
    tracker = precision_metrics.Tracker(reference)  # scores each step of the first repeat
    gc_monitor = probes.GcMonitor(counting=False)
    with gc_monitor:
        for repeat in range(job.repeats):
            population.reset()
            np.random.seed(world.seed)  # PyMDP breaks near-ties with the global numpy RNG
            for step_index in range(job.steps):
                step = StepInput(
                    int(reference.observations[step_index]), int(reference.actions[step_index])
                )
                first = repeat == 0 and step_index == 0
                on_phase("compile" if first else "step")
                total = 0.0
                for operation in population.operations:
                    gc_monitor.counting = True
                    with probes.Window(kernel) as window:
                        population.call(operation, step)
                    gc_monitor.counting = False
                    record.window(
                        "compile" if first else "step",
                        operation,
                        window,
                        repeat,
                        step_index,
                        per=job.agents,
                    )
                    total += window.seconds
                if not first:
                    step_seconds.append(total)
                if repeat == 0:
                    tracker.update(population.beliefs())
                    level = _levels()
                    record.add(
                        "growth", "step", "traced_bytes", level["traced"], repeat, step_index
                    )
                    record.add("growth", "step", "resident_bytes", level["uss"], repeat, step_index)
                    record.add("growth", "step", "anon_bytes", level["anon"], repeat, step_index)
    total_steps = job.steps * job.repeats
    for generation, count in enumerate(gc_monitor.collections):
        record.add(
            "gc",
            f"gen{generation}",
            "collections_per_100_steps",
            probes.Reading(100 * count / total_steps, probes.GC, unit="count"),
        )
    record.add(
        "gc",
        "all",
        "pause_seconds_per_100_steps",
        probes.Reading(100 * gc_monitor.pause_seconds / total_steps, probes.GC, unit="s"),
    )
    _growth_slopes(record)

    # Headline figures, before the agents are dropped.
    peak = kernel.overall()
    peak_above = probes.Reading(
        max(peak.value - baseline_rss, 0.0), probes.VMHWM, status=peak.status, reason=peak.reason
    )
    record.add("summary", "all", "peak_bytes", peak_above)
    record.add(
        "summary",
        "all",
        "peak_bytes",
        probes.Reading(heap.overall_peak().value - baseline["traced"].value, probes.TRACEMALLOC),
    )
    for key, reading in agent_growth:
        # Not USS: it moves by whole library mappings when other processes start or stop,
        # more than a shared agent's few KB (it is still in the build rows).
        if key != "uss":
            record.add("summary", "all", "agent_bytes", reading)
    record.add(
        "summary", "all", "model_bytes", probes.Reading(sum(model_bytes.values()), probes.EXACT)
    )
    if step_seconds:
        record.add("summary", "all", "step_seconds", _seconds(statistics.median(step_seconds)))

    _device_rows(record, population, "summary", "all")

    for metric, value in tracker.result().items():
        record.add(
            "precision", "step", metric, probes.Reading(value, precision_metrics.PROBE, unit="1")
        )

    on_phase("cleanup")
    held = _levels()
    del population, model
    released = _levels()
    for key in LEVELS:
        above = held[key].value - baseline[key].value
        freed = held[key].value - released[key].value
        fraction = freed / above if above > 0 else float("nan")
        record.add(
            "cleanup",
            "drop_agents",
            "released_fraction",
            probes.Reading(fraction, held[key].probe, unit="1"),
        )
        record.add(
            "cleanup",
            "drop_agents",
            "retained_bytes",
            probes.Reading(released[key].value - baseline[key].value, held[key].probe),
        )
    return record.table()


def _warm_up(backend, spec) -> None:
    """One step of a 2×2 world with the job's storage, dtype and depth, then dropped.

    A warm-up is not a value: it pages in the library code the job's operations run,
    a fixed per-process cost like the import, so that the configuration's peak holds
    what its model and agents cost and not the first touch of scipy's or XLA's code.
    """
    tiny = replace(spec, agents=1)
    population = backend.build_agents(backend.build_model(GridWorld(grid=2), tiny), tiny)
    for operation in population.operations:
        population.call(operation, StepInput(0, 0))


def _device_rows(record: Recorder, population, phase: str, operation: str) -> None:
    """An accelerator's memory counters, where the backend has a device that keeps them."""
    reader = getattr(population, "device_memory", None)
    counters = reader() if reader else None
    for name, value in (counters or {}).items():
        record.add(phase, operation, f"device_{name}", probes.Reading(value, probes.DEVICE))


def _growth_slopes(record: Recorder) -> None:
    """Bytes gained per 100 steps: least-squares slope of the first repeat's per-step levels."""
    for metric in ("traced_bytes", "resident_bytes", "anon_bytes"):
        rows = record.find("growth", metric)
        if len(rows) < 3:
            continue
        steps = np.array([r["step"] for r in rows], dtype=float)
        values = np.array([r["value"] for r in rows])
        # Skip the first step: it holds one-off allocations (caches, compiled code).
        slope = np.polyfit(steps[1:], values[1:], 1)[0]
        record.add(
            "growth",
            "step",
            f"{metric.removesuffix('_bytes')}_growth_per_100_steps_bytes",
            probes.Reading(100 * slope, rows[0]["probe"]),
        )
