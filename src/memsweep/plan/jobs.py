"""One configuration to measure: the sweep axes plus the model settings.

:class:`Job` is the one definition of a configuration's settings. Each field says,
in its metadata, what it means, which values it takes and whether it is a core axis
(every sweep lists it) or a model setting (a default that a sweep may promote to an
axis). The config schema (:mod:`memsweep.plan.config`), the command line's options
(:mod:`memsweep.cli`) and the measurement table's configuration columns
(:data:`memsweep.results.schema.CONFIG_FIELDS`) are derived from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace

from memsweep import agents as backends
from memsweep.agents.base import PYMDP_PINNED, PYMDP_RELEASES, AgentSpec
from memsweep.world import registry as worlds
from memsweep.world.base import DEFAULT_WORLD, WorldSettings, settings_from
from memsweep.world.checks import Checks
from memsweep.world.gridworld import NOISE_KINDS, RANGES
from memsweep.world.storage import DTYPES, FORMATS

SHARING = ("private", "shared")
AXIS, MODEL = "axis", "model"  # a field's role: a core axis, or a model setting


def setting(
    help: str,
    *,
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    capability: bool = False,
    recorded: bool = False,
    default=MISSING,
    pattern: str | None = None,
    **bounds: float,
) -> Field:
    """A Job field: a core axis without ``default``, a model setting with one.

    ``choices`` may be a function, asked when the choices are needed (the backends are
    found by scanning their folder). A ``capability`` is a setting each backend declares
    its support for: a Job takes any value, and one outside ``choices`` is planned as
    unsupported, with the reason (:func:`unsupported_reason`); any other value outside
    ``choices`` or ``bounds`` (JSON schema's words: ``minimum``, ``exclusiveMaximum``…)
    is not a Job. A ``pattern`` (a regular expression) admits other values beside the
    ``choices`` (a user's world). A ``recorded`` setting has no configuration column of its own: the
    provenance column of the same name records what the job ran on.
    """
    metadata = {
        "help": help,
        "role": AXIS if default is MISSING else MODEL,
        "choices": choices,
        "capability": capability,
        "recorded": recorded,
        "bounds": bounds,
        "pattern": pattern,
    }
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Job:
    """One configuration: every setting that changes its measurement."""

    # Core axes, in the order of a measurement's folders (policy_len names its file).
    backend: str = setting("agent implementation", choices=backends.names, capability=True)
    storage: str = setting("matrix storage format of A and B", choices=FORMATS, capability=True)
    dtype: str = setting("floating-point type of the model", choices=DTYPES, capability=True)
    grid: int = setting(
        "side G of the G×G grid world (N = G² states)", **RANGES["grid"], maximum=200
    )
    agents: int = setting("agents alive at once in the process", minimum=1)
    sharing: str = setting("private: a model copy per agent; shared: one model", choices=SHARING)
    policy_len: int = setting("planning depth L (5^L policies)", minimum=1, maximum=6)
    # Model settings: shared by every job of a sweep unless promoted to an axis.
    world: str = setting(
        "the generative model: memsweep's grid world, one of PyMDP's (pymdp-grid, "
        "cue-chaining, tmaze), or your own ('package.module:function' or a .npz file)",
        choices=worlds.names,
        capability=True,
        default=DEFAULT_WORLD,
        pattern=worlds.USER_PATTERN,
    )
    obs_noise: float = setting(
        "probability of seeing a cell other than the true one",
        **RANGES["obs_noise"],
        default=0.1,
    )
    noise_kind: str = setting(
        "local: the noise goes to the 4-neighbours (A sparse); uniform: to every cell (A dense)",
        choices=NOISE_KINDS,
        default="local",
    )
    move_success: float = setting(
        "probability that a move succeeds (else the agent stays)",
        **RANGES["move_success"],
        default=0.9,
    )
    steps: int = setting("steps per repeat", minimum=2, default=20)
    repeats: int = setting("repeats of the step loop", minimum=1, default=3)
    seed: int = setting(
        "seed of the environment and of tie-breaking",
        minimum=0,
        maximum=2**32 - 1,  # numpy's legacy seeding (PyMDP breaks ties with it) refuses more
        default=0,
    )
    pymdp_version: str = setting(
        "PyMDP release the agents run on: the pinned one in memsweep's environment, "
        "another in an environment of its own",
        choices=PYMDP_RELEASES,
        capability=True,
        recorded=True,
        default=PYMDP_PINNED,
    )
    # The allocator: glibc's tunables, set in the measured process's environment.
    malloc_arena_max: int = setting(
        "glibc's MALLOC_ARENA_MAX in the measured process: the most malloc arenas its "
        "threads use. 0: unset, glibc's own default (8 a core); 1: every thread "
        "allocates from one heap",
        minimum=0,
        maximum=1024,
        default=0,
    )
    malloc_mmap_threshold: int = setting(
        "glibc's MALLOC_MMAP_THRESHOLD_ in the measured process (bytes): a block this size "
        "or larger is mapped on its own and given back to the system when freed. 131072 "
        "(the default): fixed at glibc's starting value, so the figures are what the "
        "program holds; 0: unset, glibc's own dynamic threshold, which rises to the size "
        "of every mapped block freed (to 32 MiB) and from then on keeps such blocks in the "
        "heap, where freed memory stays",
        minimum=0,
        maximum=2**25,
        default=2**17,
    )

    def __post_init__(self):
        _CHECKS.check(self)

    @property
    def config_id(self) -> str:
        """A short, stable name for this exact configuration (all settings hashed, but a
        setting of :data:`LATER` at the value jobs had before it existed: their ids stay
        theirs)."""
        settings = {
            name: value
            for name, value in asdict(self).items()
            if not (name in LATER and value == LATER[name])
        }
        blob = json.dumps(settings, sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]

    @property
    def states(self) -> int:
        """Hidden states of its world's first factor (the location: N = G² on a grid):
        a derived column of every row."""
        if self.world == DEFAULT_WORLD:
            return self.grid * self.grid  # without asking the registry: plans are big
        return self.shape().states[0]

    def world_settings(self) -> WorldSettings:
        """Its world's settings (those it does not hold, e.g. the goal preference: the
        world's default)."""
        return settings_from(WorldSettings, self)

    def shape(self):
        """The shapes of its model's arrays (:class:`memsweep.world.base.ModelShape`)."""
        return worlds.get(self.world).shape(self.world_settings())

    def agent_spec(self) -> AgentSpec:
        return AgentSpec(self.storage, self.dtype, self.agents, self.sharing, self.policy_len)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Job:
        """A job from settings that may arrive as strings (command line, Snakemake wildcards)."""
        unknown = set(data) - set(TYPES)
        if unknown:
            raise ValueError(f"unknown job settings: {sorted(unknown)}; known: {sorted(TYPES)}")
        return cls(**{key: TYPES[key](value) for key, value in data.items()})

    def columns(self) -> dict:
        """The configuration columns of every measurement row of this job (a ``recorded``
        setting is a provenance column, which the process that ran fills in)."""
        settings = {k: v for k, v in self.to_dict().items() if not RECORDED.get(k)}
        return {**settings, "config_id": self.config_id, "states": self.states}


# setting -> the type its value is cast to (annotations are strings under __future__).
TYPES: dict[str, type] = {
    f.name: {"int": int, "float": float, "str": str}[f.type] for f in fields(Job)
}
SETTINGS: dict[str, Field] = {f.name: f for f in fields(Job)}
RECORDED = {name: f.metadata["recorded"] for name, f in SETTINGS.items()}
CORE_AXES = tuple(name for name, f in SETTINGS.items() if f.metadata["role"] == AXIS)
# Settings that change a job's result but are not sweep axes by default.
MODEL_SETTINGS = tuple(name for name, f in SETTINGS.items() if f.metadata["role"] == MODEL)
# Settings added after results were measured, each with the value those results ran
# with: at that value a job's id stays what it was (Job.config_id), and a file without
# the column reads with it (memsweep.results.schema.LATER_COLUMNS).
LATER = {"pymdp_version": PYMDP_PINNED, "world": DEFAULT_WORLD, "malloc_arena_max": 0,
         "malloc_mmap_threshold": 0}  # fmt: skip
# The allocator's settings -> the environment variable of each (glibc's tunables: read
# once, as a process's allocator starts). 0 leaves the variable unset: glibc's own.
ALLOCATOR = {"malloc_arena_max": "MALLOC_ARENA_MAX",
             "malloc_mmap_threshold": "MALLOC_MMAP_THRESHOLD_"}  # fmt: skip
UNSET_WORDS = {"malloc_arena_max": "glibc's default arenas",
               "malloc_mmap_threshold": "glibc's dynamic mmap threshold"}  # fmt: skip


def allocator_words(settings) -> list[str]:
    """The allocator settings of a job or a row (item access) that are not memsweep's
    defaults, in words: ``MALLOC_ARENA_MAX=1``, ``glibc's dynamic mmap threshold``. A
    setting it does not hold (an older table) is not named."""
    words = []
    for name, variable in ALLOCATOR.items():
        value = settings.get(name) if hasattr(settings, "get") else getattr(settings, name)
        if value is None or value != value or int(value) == SETTINGS[name].default:
            continue  # (value != value: a NaN)
        words.append(f"{variable}={int(value)}" if int(value) else UNSET_WORDS[name])
    return words


# The reference every variant is scored against: float64 dense PyMDP numpy, one agent,
# on the pinned PyMDP (every release's agents are scored against the same trace).
REFERENCE_SPEC = dict(
    backend="pymdp-numpy",
    storage="dense",
    dtype="float64",
    agents=1,
    sharing="shared",
    pymdp_version=PYMDP_PINNED,
    # The reference's trace does not depend on the allocator: one reference serves all.
    **{name: SETTINGS[name].default for name in ALLOCATOR},
)
# The model settings a reference depends on: a promoted one is a folder of its path.
REFERENCE_SETTINGS = tuple(name for name in MODEL_SETTINGS if name not in REFERENCE_SPEC)


def choices(name: str) -> tuple[str, ...] | None:
    """The values setting ``name`` takes, where it is one of a list (None for numbers)."""
    found = SETTINGS[name].metadata["choices"]
    return tuple(found() if callable(found) else found) if found is not None else None


def pattern(name: str) -> str | None:
    """The regular expression of the values setting ``name`` takes beside its choices."""
    return SETTINGS[name].metadata["pattern"]


def bounds(name: str) -> dict[str, float]:
    """Setting ``name``'s bounds, as JSON schema words them (``minimum``, ``exclusiveMaximum``…)."""
    return dict(SETTINGS[name].metadata["bounds"])


def column_types() -> dict[str, type]:
    """Every configuration column of a measurement row, in order, with its type: the job's
    id, its settings (``states`` beside ``grid``, which it follows from) and the ``layout``
    its backend gave its agents (an outcome, not a setting)."""
    columns: dict[str, type] = {"config_id": str}
    for name, kind in TYPES.items():
        if RECORDED[name]:
            continue  # a provenance column (pymdp_version: the release that ran)
        columns[name] = kind
        if name == "grid":
            columns["states"] = int
    columns["layout"] = str
    return columns


def _checks() -> Checks:
    """The tests of every setting's values, from its declaration: its bounds, and its
    choices unless it is a capability (see :func:`setting`)."""
    closed = {
        name: choices(name)
        for name, declared in SETTINGS.items()
        if declared.metadata["choices"] is not None and not declared.metadata["capability"]
    }
    return Checks({name: bounds(name) for name in SETTINGS if bounds(name)}, closed)


_CHECKS = _checks()


def unsupported_reason(job: Job) -> str | None:
    """Why ``job`` cannot run, or None: its backend is unknown, or declines its storage,
    dtype or PyMDP release (the backend's own reason). The one check the plan, the command
    line and the harness all make."""
    try:
        backend = backends.get(job.backend)
    except backends.UnknownBackend as error:
        return str(error)
    if job.pymdp_version not in PYMDP_RELEASES:
        return f"unknown PyMDP release {job.pymdp_version!r}; known: {', '.join(PYMDP_RELEASES)}"
    reason = backend.unsupported_reason(job.agent_spec()) or backend.pymdp_reason(job.pymdp_version)
    return reason or world_reason(job, backend)


def world_reason(job: Job, backend) -> str | None:
    """Why ``job``'s world cannot run on its backend, at its size, or None."""
    if job.world == DEFAULT_WORLD:
        return None
    try:
        world = worlds.get(job.world)
    except worlds.UnknownWorld as error:
        return str(error)
    return world.size_reason(job.world_settings()) or backend.world_reason(
        job.shape(), job.pymdp_version
    )


def reference_job(job: Job) -> Job:
    """The job whose reference trace ``job`` replays: same world and depth, REFERENCE_SPEC."""
    return replace(job, **REFERENCE_SPEC)
