"""One configuration -> one tidy table of measurements. Runs inside the job's own process.

A measurement is a sequence of phases, one method each of :class:`Measurement`, run in
this order (every later figure is above the post-import baseline):

1. ``import``: the backend's libraries and a warm-up step (fixed per-process costs).
2. ``build``: the model (operation ``model``: exact bytes and zero fraction of A, B, C,
   D), then the agents (``agents``).
3. ``compile``: the first call of each operation (JAX traces and compiles here; numpy
   fills its caches), kept apart from the steady state.
4. ``step``: every later call of each operation, per step and repeat: wall time per
   agent, traced and kernel peak above the call's start, traced bytes retained.
   The first repeat also records the level of every probe after each step and scores
   the beliefs against the reference, step by step.
5. ``growth`` and ``gc``: the slope of those levels; collections and pauses.
6. ``summary``: the headline figures, read before anything is dropped.
7. ``precision``: the running maxima of the errors against the reference.
8. ``cleanup``: the share of memory released when the agents and the model are dropped.

Levels are read after ``gc.collect()``; every value names its probe (the registry in
:mod:`memsweep.harness.probes`).
"""

from __future__ import annotations

import datetime
import platform
import socket
import statistics
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from memsweep import __version__, agents
from memsweep.agents import StepInput
from memsweep.harness import precision, probes
from memsweep.harness.recorder import Recorder, seconds
from memsweep.harness.reference import Reference
from memsweep.plan.jobs import Job, unsupported_reason
from memsweep.world.gridworld import GridWorld

PhaseHook = Callable[[str], None]
# Rows one step can add: up to 4 operations × 4 window rows, plus a level per probe.
ROWS_PER_STEP = 16 + len(probes.levels())


def provenance(backend_name: str) -> dict:
    """Versions, host and start time: recorded in every row of a job's table.

    The library versions are those the backend declares it runs on (``Backend.versions``);
    a column it does not declare stays empty, and so do all of them for a name that is no
    backend (a failed record of a bad job).
    """
    try:
        backend_versions = agents.get(backend_name).versions()
    except agents.UnknownBackend:
        backend_versions = {}
    return {
        "memsweep_version": __version__,
        **dict.fromkeys(("pymdp_version", "scipy_version", "jax_version")),
        "numpy_version": np.__version__,
        **backend_versions,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def levels() -> dict[str, probes.Reading]:
    """Every level probe's reading now, after a collection (probe name -> reading)."""
    probes.settle()
    return {probe.name: probe.read() for probe in probes.levels()}


def growth(before: dict, after: dict, per: int = 1) -> dict[str, probes.Reading]:
    """Each level probe's change from ``before`` to ``after``, per ``per`` agents."""
    return {
        name: probes.Reading((after[name].value - before[name].value) / per, name) for name in after
    }


def measure(job: Job, reference: Reference, on_phase: PhaseHook = lambda phase: None):
    """Measure ``job`` in this process; returns a pyarrow table in the canonical schema."""
    return Measurement(job, reference, on_phase).run()


class Measurement:
    """The state one measurement carries from phase to phase.

    The agents and the model are held here and nowhere else, so that :meth:`cleanup`
    drops the last references to them.
    """

    def __init__(self, job: Job, reference: Reference, on_phase: PhaseHook):
        reason = unsupported_reason(job)
        if reason:
            raise ValueError(f"unsupported configuration: {reason}")
        self.job, self.on_phase = job, on_phase
        self.world, self.spec = job.world(), job.agent_spec()
        reference.check_matches(self.world, job.policy_len, job.steps)
        self.reference = reference
        self.backend = agents.get(job.backend)
        self.kernel = probes.KernelPeak()
        self.record = Recorder({**job.columns(), **provenance(job.backend), "layout": None})
        self.tracker = precision.Tracker(reference)  # scores each step of the first repeat
        self.gc_monitor = probes.GcMonitor(counting=False)
        self.step_seconds: list[float] = []

    def run(self):
        self.imports()
        self.set_baseline()
        self.build()
        with self.gc_monitor:
            self.first_call()
            self.steps()
        self.gc_rows()
        self.growth_slopes()
        self.summary()
        self.precision()
        self.cleanup()
        return self.record.table()

    # 1. import ---------------------------------------------------------------------
    def imports(self) -> None:
        """The backend's import, then a warm-up step: process probes only.

        tracemalloc is not on yet: tracing an import makes it several times slower, and
        its cost is the process's, not the Python heap's.
        """
        self.on_phase("import")
        before = levels()
        for operation, work in (("load", self.backend.load), ("warm_up", self.warm_up)):
            with probes.Window(self.kernel, traced=False) as window:
                work()
            after = levels()
            self.record.add("import", operation, "seconds", seconds(window.seconds))
            for name, reading in growth(before, after).items():
                if name != probes.TRACEMALLOC:
                    metric = f"{probes.REGISTRY[name].level_metric}_bytes"
                    self.record.add("import", operation, metric, reading)
            before = after

    def warm_up(self) -> None:
        """One step of a 2×2 world with the job's storage, dtype and depth, then dropped.

        A warm-up is not a value: it pages in the library code the job's operations run,
        a fixed per-process cost like the import, so that the configuration's peak holds
        what its model and agents cost and not the first touch of scipy's or XLA's code.
        """
        tiny = replace(self.spec, agents=1)
        model = self.backend.build_model(GridWorld(grid=2), tiny)
        population = self.backend.build_agents(model, tiny)
        for operation in population.operations:
            population.call(operation, StepInput(0, 0))

    def set_baseline(self) -> None:
        """The post-import baseline; the process peak is measured from here, across every
        window (each window resets the peaks; ``overall`` keeps the highest of them)."""
        self.record.reserve(self.job.repeats * self.job.steps * ROWS_PER_STEP)
        self.heap = probes.Heap().start()
        self.baseline = levels()
        self.baseline_rss = probes.Resident.read().value
        if self.kernel.available:
            self.kernel.restart()
        self.heap.restart()

    # 2. build ----------------------------------------------------------------------
    def build(self) -> None:
        self.on_phase("build")
        record = self.record
        with probes.Window(self.kernel) as window:
            self.model = self.backend.build_model(self.world, self.spec)
        built_model = levels()
        record.window("build", "model", window)
        for reading in growth(self.baseline, built_model).values():
            record.add("build", "model", "growth_bytes", reading)
        self.model_bytes = self.model.nbytes()
        for name, size in self.model_bytes.items():
            record.add("model", name, "bytes", probes.Reading(size, probes.EXACT))
        for name, fraction in self.model.zero_fraction().items():
            reading = probes.Reading(fraction, probes.EXACT, unit="1")
            record.add("model", name, "zero_fraction", reading)

        with probes.Window(self.kernel) as window:
            self.population = self.backend.build_agents(self.model, self.spec)
        built = levels()
        record.window("build", "agents", window)
        for reading in growth(built_model, built).values():
            record.add("build", "agents", "growth_bytes", reading)
        self.agent_growth = growth(built_model, built, per=self.job.agents)
        for reading in self.agent_growth.values():
            record.add("build", "agents", "per_agent_bytes", reading)
        record.common["layout"] = self.population.layout
        self.device_rows("build", "agents")

    # 3-4. first call and steps ----------------------------------------------------------
    def start_repeat(self) -> None:
        self.population.reset()
        np.random.seed(self.world.seed)  # PyMDP breaks near-ties with the global numpy RNG

    def first_call(self) -> None:
        self.on_phase("compile")
        self.start_repeat()
        self.step("compile", repeat=0, index=0)

    def steps(self) -> None:
        self.on_phase("step")
        for repeat in range(self.job.repeats):
            if repeat:
                self.start_repeat()
            for index in range(1 if repeat == 0 else 0, self.job.steps):
                self.step_seconds.append(self.step("step", repeat, index))

    def step(self, phase: str, repeat: int, index: int) -> float:
        """Every operation of one step, each in its own window; returns the step's time."""
        reference = self.reference
        inputs = StepInput(int(reference.observations[index]), int(reference.actions[index]))
        total = 0.0
        for operation in self.population.operations:
            self.gc_monitor.counting = True  # the harness's own collections are not counted
            with probes.Window(self.kernel) as window:
                self.population.call(operation, inputs)
            self.gc_monitor.counting = False
            self.record.window(phase, operation, window, repeat, index, per=self.job.agents)
            total += window.seconds
        if repeat == 0:
            self.tracker.update(self.population.beliefs())
            for name, reading in levels().items():
                metric = f"{probes.REGISTRY[name].level_metric}_bytes"
                self.record.add("growth", "step", metric, reading, repeat, index)
        return total

    # 5. growth and gc ---------------------------------------------------------------
    def gc_rows(self) -> None:
        total_steps = self.job.steps * self.job.repeats
        for generation, count in enumerate(self.gc_monitor.collections):
            reading = probes.Reading(100 * count / total_steps, probes.GC, unit="count")
            self.record.add("gc", f"gen{generation}", "collections_per_100_steps", reading)
        pause = 100 * self.gc_monitor.pause_seconds / total_steps
        reading = probes.Reading(pause, probes.GC, unit="s")
        self.record.add("gc", "all", "pause_seconds_per_100_steps", reading)

    def growth_slopes(self) -> None:
        """Bytes gained per 100 steps: least-squares slope of the first repeat's levels."""
        for probe in probes.levels():
            rows = self.record.find("growth", f"{probe.level_metric}_bytes")
            if len(rows) < 3:
                continue
            steps = np.array([r["step"] for r in rows], dtype=float)
            values = np.array([r["value"] for r in rows])
            # Skip the first step: it holds one-off allocations (caches, compiled code).
            slope = np.polyfit(steps[1:], values[1:], 1)[0]
            metric = f"{probe.level_metric}_growth_per_100_steps_bytes"
            self.record.add("growth", "step", metric, probes.Reading(100 * slope, probe.name))

    # 6-7. summary and precision -----------------------------------------------------------
    def summary(self) -> None:
        """The headline figures, before the agents are dropped."""
        record = self.record
        peak = self.kernel.overall()
        above = max(peak.value - self.baseline_rss, 0.0)
        reading = probes.Reading(above, probes.VMHWM, status=peak.status, reason=peak.reason)
        record.add("summary", "all", "peak_bytes", reading)
        traced = self.heap.overall_peak().value - self.baseline[probes.TRACEMALLOC].value
        record.add("summary", "all", "peak_bytes", probes.Reading(traced, probes.TRACEMALLOC))
        for name, reading in self.agent_growth.items():
            if probes.REGISTRY[name].summarised:
                record.add("summary", "all", "agent_bytes", reading)
        model_bytes = probes.Reading(sum(self.model_bytes.values()), probes.EXACT)
        record.add("summary", "all", "model_bytes", model_bytes)
        if self.step_seconds:
            median = statistics.median(self.step_seconds)
            record.add("summary", "all", "step_seconds", seconds(median))
        self.device_rows("summary", "all")

    def precision(self) -> None:
        for metric, value in self.tracker.result().items():
            reading = probes.Reading(value, precision.PROBE, unit="1")
            self.record.add("precision", "step", metric, reading)

    def device_rows(self, phase: str, operation: str) -> None:
        """An accelerator's memory counters, where the backend has a device that keeps them."""
        reader = getattr(self.population, "device_memory", None)
        for name, value in ((reader() if reader else None) or {}).items():
            reading = probes.Reading(value, probes.DEVICE)
            self.record.add(phase, operation, f"device_{name}", reading)

    # 8. cleanup ------------------------------------------------------------------------
    def cleanup(self) -> None:
        self.on_phase("cleanup")
        held = levels()
        del self.population, self.model  # the last references: nothing else holds them
        released = levels()
        for name, before in held.items():
            above = before.value - self.baseline[name].value
            freed = before.value - released[name].value
            fraction = freed / above if above > 0 else float("nan")
            reading = probes.Reading(fraction, name, unit="1")
            self.record.add("cleanup", "drop_agents", "released_fraction", reading)
            retained = released[name].value - self.baseline[name].value
            self.record.add(
                "cleanup", "drop_agents", "retained_bytes", probes.Reading(retained, name)
            )
