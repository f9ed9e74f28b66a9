"""One configuration to measure: the sweep axes plus the model settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace

from memsweep.agents.base import AgentSpec
from memsweep.world.gridworld import GridWorld

SHARING = ("private", "shared")
# The reference every variant is scored against: float64 dense PyMDP numpy, one agent.
REFERENCE_SPEC = dict(
    backend="pymdp-numpy", storage="dense", dtype="float64", agents=1, sharing="shared"
)
# Settings that change a job's result but are not sweep axes by default.
MODEL_SETTINGS = ("obs_noise", "noise_kind", "move_success", "steps", "repeats", "seed")


@dataclass(frozen=True)
class Job:
    backend: str
    storage: str
    dtype: str
    grid: int
    agents: int
    sharing: str
    policy_len: int
    obs_noise: float = 0.1
    noise_kind: str = "local"
    move_success: float = 0.9
    steps: int = 20
    repeats: int = 3
    seed: int = 0

    def __post_init__(self):
        for name in ("grid", "agents", "policy_len", "steps", "repeats"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.sharing not in SHARING:
            raise ValueError(f"sharing must be one of {SHARING}, got {self.sharing!r}")
        self.world()  # validates the model settings

    @property
    def states(self) -> int:
        return self.grid * self.grid

    @property
    def config_id(self) -> str:
        """A short, stable name for this exact configuration (all settings hashed)."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]

    def world(self) -> GridWorld:
        return GridWorld(
            grid=self.grid,
            obs_noise=self.obs_noise,
            noise_kind=self.noise_kind,
            move_success=self.move_success,
            seed=self.seed,
        )

    def agent_spec(self) -> AgentSpec:
        return AgentSpec(self.storage, self.dtype, self.agents, self.sharing, self.policy_len)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Job:
        """A job from settings that may arrive as strings (command line, Snakemake wildcards)."""
        unknown = set(data) - set(_CASTS)
        if unknown:
            raise ValueError(f"unknown job settings: {sorted(unknown)}; known: {sorted(_CASTS)}")
        return cls(**{key: _CASTS[key](value) for key, value in data.items()})

    def columns(self) -> dict:
        """The configuration columns of every measurement row of this job."""
        return {**self.to_dict(), "config_id": self.config_id, "states": self.states}


def reference_job(job: Job) -> Job:
    """The job whose reference trace ``job`` replays: same world and depth, REFERENCE_SPEC."""
    return replace(job, **REFERENCE_SPEC)


# setting -> the type its value is cast to (annotations are strings under __future__).
_CASTS = {f.name: {"int": int, "float": float, "str": str}[f.type] for f in fields(Job)}
