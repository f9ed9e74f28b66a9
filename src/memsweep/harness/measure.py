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
6. ``summary``: the headline figures, read before anything is dropped: the resident
   baseline, the peak above it and the process's total peak (``vmhwm``), the traced peak,
   the build's per-agent bytes, the model's bytes and the median step time.
7. ``precision``: the running maxima of the errors against the reference.
8. ``cleanup``: the share of memory released when the agents and the model are dropped.
9. ``sites`` (rows of phase ``build``): where the build's bytes were allocated, from a
   second build of the model and the agents traced with deep stacks.

Levels are read after ``gc.collect()``, which skips the objects alive at the baseline
(frozen: :meth:`Measurement.freeze_baseline`); every value names its probe (the registry in
:mod:`memsweep.harness.probes`).
"""

from __future__ import annotations

import datetime
import gc
import math
import os
import platform
import resource
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from memsweep import __version__, agents
from memsweep.agents import StepInput
from memsweep.harness import jumps, limits, precision, probes, sites
from memsweep.harness.recorder import Recorder, seconds
from memsweep.harness.reference import Reference
from memsweep.plan.jobs import Job, unsupported_reason
from memsweep.world import registry as worlds
from memsweep.world.base import WorldSettings

PhaseHook = Callable[[str], None]
# Rows one step can add: up to 4 operations × 4 window rows, plus a level per probe.
ROWS_PER_STEP = 16 + len(probes.levels())
# Level probes that count whole resident pages: a change under one page is below what
# they resolve (an allocation that fits in pages already resident moves them by nothing).
PAGE_COUNTED = frozenset({probes.ANON, probes.USS})
PAGE_BYTES = resource.getpagesize()


def provenance(backend_name: str, release: str | None = None) -> dict:
    """Versions, host and start time: recorded in every row of a job's table.

    The library versions are those the backend declares it runs on (``Backend.versions``);
    a column it does not declare stays empty, and so do all of them for a name that is no
    backend (a failed record of a bad job). ``release`` is the job's ``pymdp_version``,
    the PyMDP of the environment its process ran in (:class:`Measurement` checks it): the
    ``pymdp_version`` column for every backend, one that imports no PyMDP too, so that the
    column agrees with a ``pymdp_version=`` folder.
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
        # What held the job to its cap, as its supervisor says (none outside one).
        "cap_enforcement": os.environ.get(limits.RECORD_VARIABLE),
        **({"pymdp_version": release} if release is not None else {}),
    }


def _malloc_trim() -> bool | str:
    """Call glibc's ``malloc_trim(0)``; its result, or why it could not be called."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return "no malloc_trim in this C library (glibc only)"
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(trim(0))


def levels() -> dict[str, probes.Reading]:
    """Every level probe's reading now, after a collection (probe name -> reading)."""
    probes.settle()
    return {probe.name: probe.read() for probe in probes.levels()}


def growth(before: dict, after: dict) -> dict[str, probes.Reading]:
    """Each level probe's change from ``before`` to ``after`` (unavailable, with why,
    where either reading was)."""
    changes = {}
    for name, now in after.items():
        then = before[name]
        unread = next((r for r in (then, now) if r.status != "ok"), None)
        changes[name] = probes.Reading(
            now.value - then.value,
            name,
            status=unread.status if unread else "ok",
            reason=unread.reason if unread else None,
        )
    return changes


def per_agent(grown: dict[str, probes.Reading], agents: int) -> dict[str, probes.Reading]:
    """Each level probe's growth over building ``agents`` agents, per agent.

    Where a page-counting probe grew by less than one page, it did not resolve the agents
    (they fit in heap pages already resident, or other memory was released meanwhile):
    the figure is unavailable, with the reading in its reason, not a misleading 0.
    """
    shares = {}
    for name, reading in grown.items():
        if reading.status != "ok":
            shares[name] = reading
        elif name in PAGE_COUNTED and reading.value < PAGE_BYTES:
            reason = (
                f"the {agents} agent(s) changed {name} by {reading.value:.0f} B, under one "
                f"page ({PAGE_BYTES} B), the least it resolves"
            )
            shares[name] = probes.Reading(math.nan, name, status="unavailable", reason=reason)
        else:
            shares[name] = probes.Reading(reading.value / agents, name)
    return shares


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
        ran = provenance(job.backend)["pymdp_version"]  # as installed here
        if ran is not None and ran != job.pymdp_version:
            raise ValueError(
                f"this environment holds PyMDP {ran}, the job asks for {job.pymdp_version}: "
                "its supervisor runs it in that release's environment (memsweep.harness.envs)"
            )
        self.job, self.on_phase = job, on_phase
        self.world, self.spec = job.world_settings(), job.agent_spec()
        reference.check_matches(self.world, job.policy_len, job.steps)
        self.source = worlds.get(job.world)
        self.reference = reference
        self.backend = agents.get(job.backend)
        self.kernel = probes.KernelPeak()
        versions = provenance(job.backend, job.pymdp_version)
        self.record = Recorder({**job.columns(), **versions, "layout": None})
        self.tracker = precision.Tracker(reference)  # scores each step of the first repeat
        self.gc_monitor = probes.GcMonitor(counting=False)
        self.step_seconds: list[list[float]] = []  # per repeat, every later step's time

    def run(self):
        self.imports()
        try:
            self.set_baseline()
            self.build()
            with self.gc_monitor:
                self.first_call()
                self.steps()
            self.gc_rows()
            self.growth_slopes()
            self.summary()
            self.precision()
            self.compiled_plans()
            self.cleanup()
            self.allocation_sites()
        finally:
            gc.unfreeze()  # see freeze_baseline
        return self.record.table()

    # 1. import ---------------------------------------------------------------------
    def imports(self) -> None:
        """The backend's import, then a warm-up step: process probes only.

        tracemalloc is not on yet: tracing an import makes it several times slower, and
        its cost is the process's, not the Python heap's.
        """
        self.on_phase("import")
        start = before = levels()
        for operation, work in (("load", self.backend.load), ("warm_up", self.warm_up)):
            with probes.Window(self.kernel, traced=False) as window:
                work()
            after = levels()
            self.record.add("import", operation, "seconds", seconds(window.seconds))
            self.import_rows(operation, growth(before, after))
            before = after
        # The backend's fixed cost is both: what the warm-up keeps (XLA's runtime, caches)
        # is paid once per process like the import, so it is one figure per probe.
        self.import_rows("total", growth(start, before))

    def import_rows(self, operation: str, grown: dict[str, probes.Reading]) -> None:
        for name, reading in grown.items():
            if name != probes.TRACEMALLOC:
                metric = f"{probes.REGISTRY[name].level_metric}_bytes"
                self.record.add("import", operation, metric, reading)

    def warm_up(self) -> None:
        """One step of a 2×2 world with the job's storage, dtype and depth, then dropped.

        A warm-up is not a value: it pages in the library code the job's operations run,
        a fixed per-process cost like the import, so that the configuration's peak holds
        what its model and agents cost and not the first touch of scipy's or XLA's code.
        """
        tiny = replace(self.spec, agents=1)
        tiny_world = worlds.get("grid").model(WorldSettings(grid=2))
        model = self.backend.build_model(tiny_world, tiny)
        population = self.backend.build_agents(model, tiny)
        for operation in population.operations:
            population.call(operation, StepInput((0,), (0,)))

    def set_baseline(self) -> None:
        """The post-import baseline; the process peak is measured from here, across every
        window (each window resets the peaks; ``overall`` keeps the highest of them)."""
        self.record.reserve(self.job.repeats * self.job.steps * ROWS_PER_STEP)
        self.heap = probes.Heap().start()
        self.baseline = levels()
        self.freeze_baseline()
        if self.kernel.available:
            self.kernel.restart()
        # Just after its reset the kernel's peak is the resident set: the baseline of the
        # summary's peak, read by the same probe (unavailable, with why, where it is).
        self.baseline_resident = self.kernel.read()
        self.heap.restart()

    def freeze_baseline(self) -> None:
        """Move every object alive at the baseline out of the collector's sight.

        The libraries' objects (JAX's alone are a million) are alive for the process's
        life, and each full collection traverses them: 110-175 ms each, ~20 of them a job
        between readings. Frozen (``gc.freeze``: no memory moves, nothing is freed or
        allocated), they are skipped, and a collection sees what the model, the agents and
        their calls made. The agents' own collections skip them too: their gc rows count
        the agents' objects. What one full collection over the baseline's objects costs
        is its own row (``gc/baseline``), once, from the collection made just before.
        """
        started = time.perf_counter()
        gc.collect()
        pause = time.perf_counter() - started
        gc.freeze()
        self.record.add("gc", "baseline", "full_collection_seconds", seconds(pause))
        frozen = probes.Reading(gc.get_freeze_count(), probes.GC, unit="count")
        self.record.add("gc", "baseline", "frozen_objects", frozen)

    # 2. build ----------------------------------------------------------------------
    def world_model(self):
        """The world's float64 model: built here where the world needs numpy and scipy
        only, else read from the reference's file (its process built it)."""
        if self.source.in_process:
            return self.source.model(self.world)
        return self.reference.load_model()

    def build(self) -> None:
        self.on_phase("build")
        record = self.record
        with probes.Window(self.kernel) as window:
            self.model = self.backend.build_model(self.world_model(), self.spec)
        built_model = levels()
        record.window("build", "model", window)
        for reading in growth(self.baseline, built_model).values():
            record.add("build", "model", "growth_bytes", reading)
        self.model_bytes = self.model.nbytes()
        sizes, fractions = self.model_bytes, self.model.zero_fraction()
        if self.model.several_arrays:  # and each array of the world on its own
            sizes = {**sizes, **self.model.array_nbytes()}
            fractions = {**fractions, **self.model.array_zero_fraction()}
        for name, size in sizes.items():
            record.add("model", name, "bytes", probes.Reading(size, probes.EXACT))
        for name, fraction in fractions.items():
            reading = probes.Reading(fraction, probes.EXACT, unit="1")
            record.add("model", name, "zero_fraction", reading)

        with probes.Window(self.kernel) as window:
            self.population = self.backend.build_agents(self.model, self.spec)
        built = levels()
        record.window("build", "agents", window)
        grown = growth(built_model, built)
        for reading in grown.values():
            record.add("build", "agents", "growth_bytes", reading)
        self.per_agent = per_agent(grown, self.job.agents)
        for reading in self.per_agent.values():
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

    def steps(self, repeats: int | None = None) -> None:
        """The job's repeats of its steps (``repeats`` of them where given)."""
        self.on_phase("step")
        for repeat in range(self.job.repeats if repeats is None else repeats):
            if repeat:
                self.start_repeat()
            first = 1 if repeat == 0 else 0
            times = [self.step("step", repeat, index) for index in range(first, self.job.steps)]
            self.step_seconds.append(times)

    def step(self, phase: str, repeat: int, index: int) -> float:
        """Every operation of one step, each in its own window; returns the step's time."""
        inputs = self.reference.inputs(index)
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
            self.steady_growth_rows(probe, jumps.split(steps, values))

    def steady_growth_rows(self, probe, split: jumps.Growth) -> None:
        """The jumps and the slope after the last of them (:mod:`memsweep.harness.jumps`)."""
        level = probe.level_metric
        jumped = probes.Reading(split.jump_bytes, probe.name)
        self.record.add("growth", "step", f"{level}_jump_bytes", jumped)
        if split.steady_per_100_steps is None:
            steady = probes.Reading(math.nan, probe.name, status="unavailable", reason=split.reason)
        else:
            steady = probes.Reading(split.steady_per_100_steps, probe.name)
        self.record.add("growth", "step", f"{level}_steady_growth_per_100_steps_bytes", steady)

    # 6-7. summary and precision -----------------------------------------------------------
    def summary(self) -> None:
        """The headline figures, before the agents are dropped."""
        record = self.record
        self.resident_footprint()
        traced = self.heap.overall_peak().value - self.baseline[probes.TRACEMALLOC].value
        record.add("summary", "all", "peak_bytes", probes.Reading(traced, probes.TRACEMALLOC))
        for name, reading in self.per_agent.items():  # the build's rows, repeated
            if probes.REGISTRY[name].summarised:
                record.add("summary", "all", "per_agent_bytes", reading)
        model_bytes = probes.Reading(sum(self.model_bytes.values()), probes.EXACT)
        record.add("summary", "all", "model_bytes", model_bytes)
        every = [time for times in self.step_seconds for time in times]
        if every:
            record.add("summary", "all", "step_seconds", seconds(statistics.median(every)))
        record.add("summary", "all", "step_seconds_cv", self.timing_spread())
        self.device_rows("summary", "all")

    def timing_spread(self) -> probes.Reading:
        """How stable the step time was: the coefficient of variation (sample standard
        deviation over mean) of each repeat's median step time. Needs two repeats."""
        medians = [statistics.median(times) for times in self.step_seconds if times]
        if len(medians) < 2:
            reason = f"needs 2 repeats with steps to compare, has {len(medians)}"
            return probes.Reading(
                math.nan, probes.CLOCK, unit="1", status="unavailable", reason=reason
            )
        spread = statistics.stdev(medians) / statistics.mean(medians)
        return probes.Reading(spread, probes.CLOCK, unit="1")

    def resident_footprint(self) -> None:
        """The process's resident set by the kernel's peak: at the baseline, the highest
        since (``total_peak_bytes``, absolute) and the difference (``peak_bytes``)."""
        baseline, total = self.baseline_resident, self.kernel.overall()
        if baseline.status != "ok":
            total = baseline  # no baseline: no peak either, and the same reason
        above = probes.Reading(
            total.value - baseline.value, probes.VMHWM, status=total.status, reason=total.reason
        )
        self.record.add("summary", "all", "baseline_bytes", baseline)
        self.record.add("summary", "all", "peak_bytes", above)
        self.record.add("summary", "all", "total_peak_bytes", total)

    def precision(self) -> None:
        for metric, value in self.tracker.result().items():
            reading = probes.Reading(value, precision.PROBE, unit="1")
            self.record.add("precision", "step", metric, reading)

    def compiled_plans(self) -> None:
        """XLA's memory plan of each program the backend compiled (none for most backends).

        Read after everything else is measured: the operations compiled one by one for it
        (see the backend) must not count in any window, level or peak.
        """
        inputs = self.reference.inputs(0)
        for program, plan in self.population.compiled_memory(inputs).items():
            for metric, size in plan.items():
                self.record.add("compile", program, metric, probes.Reading(size, probes.XLA))

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
        self.trim(released)

    def trim(self, released: dict[str, probes.Reading]) -> None:
        """What of the retained memory the allocator held, not the objects.

        glibc's ``malloc_trim(0)`` hands the heap's free pages back to the kernel: the
        page-counting probes' fall over it is memory the allocator kept after the drop
        (free, but resident), the rest of ``retained_bytes`` is still held (live objects,
        caches, fragmentation). Each probe is compared with itself only.
        """
        returned = _malloc_trim()
        after = levels()
        for name in sorted(PAGE_COUNTED & set(after)):
            if isinstance(returned, str):
                unread = probes.Reading(math.nan, name, status="unavailable", reason=returned)
                self.record.add("cleanup", "malloc_trim", "returned_bytes", unread)
                self.record.add("cleanup", "malloc_trim", "retained_bytes", unread)
                continue
            fell = probes.Reading(released[name].value - after[name].value, name)
            kept = probes.Reading(after[name].value - self.baseline[name].value, name)
            self.record.add("cleanup", "malloc_trim", "returned_bytes", fell)
            self.record.add("cleanup", "malloc_trim", "retained_bytes", kept)

    # 9. sites --------------------------------------------------------------------------
    def allocation_sites(self) -> None:
        """Where the build's bytes were allocated: the model and the agents built once more
        under deep tracebacks, and the top sites of what each holds (``build`` rows
        ``site_bytes``, ``site_count``; :mod:`memsweep.harness.sites`).

        After everything else is measured, on a build of its own: a traceback of more than
        one frame makes every traced allocation several times slower (a pymdp-numpy step
        3×, a JAX job 5×; docs/data.md), which no measured window may pay, and the
        tracing of the job's own figures keeps one frame. The second build allocates what
        the first did, less what the first left in a library's caches (JAX's compiled
        programs): those stay in the first build's ``retained_bytes``, without a site.
        """
        self.on_phase("sites")
        self.heap.stop()  # the job's tracing: everything it measures is recorded
        with sites.tracing():
            model = self.backend.build_model(self.world_model(), self.spec)
            model_sites = sites.held()
            population = self.backend.build_agents(model, self.spec)
            agents_sites = sites.held()
            del population, model
        for operation, now, before in (
            ("model", model_sites, None),
            ("agents", agents_sites, model_sites),
        ):
            for site in sites.top(now, before):
                size = probes.Reading(site.bytes, probes.TRACEMALLOC)
                count = probes.Reading(site.count, probes.TRACEMALLOC, unit="count")
                self.record.add("build", operation, "site_bytes", size, site=site.name)
                self.record.add("build", operation, "site_count", count, site=site.name)
