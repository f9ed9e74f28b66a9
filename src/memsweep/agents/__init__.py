"""Backends: one module each, registered here by name.

Modules are imported on first use only; each keeps its heavy imports inside
``Backend.load`` so that planning a sweep never imports PyMDP or JAX.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

from .base import AgentSpec, Backend, Beliefs, Population, StepInput, StoredModel, build_model

MODULES = {
    "pymdp-numpy": "pymdp_numpy",
    "pymdp-jax": "pymdp_jax",
    "lean": "lean",
}
BACKENDS = tuple(MODULES)


class UnknownBackend(ValueError):
    pass


def module_path(name: str) -> Path:
    """The source file of a backend: a job's input, so editing it reruns that backend only."""
    if name not in MODULES:
        raise UnknownBackend(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    return Path(__file__).with_name(MODULES[name] + ".py")


@functools.cache
def get(name: str) -> Backend:
    """The backend named ``name``; a backend whose module is missing raises UnknownBackend."""
    path = module_path(name)
    if not path.exists():
        raise UnknownBackend(f"backend {name!r} is not built yet ({path.name} is missing)")
    return importlib.import_module(f"{__name__}.{MODULES[name]}").BACKEND


__all__ = [
    "AgentSpec",
    "BACKENDS",
    "Backend",
    "Beliefs",
    "Population",
    "StepInput",
    "StoredModel",
    "UnknownBackend",
    "build_model",
    "get",
    "module_path",
]
