"""Backends: one module each in this folder, found by scanning it.

A backend module holds one :class:`~memsweep.agents.base.Backend` instance named
``BACKEND``; its ``name`` is the value of the ``backend`` axis, and the module is named
after it (``-`` becomes ``_``). Nothing else lists the
backends: the config schema's choices, the CLI's choices and the plan all ask
:func:`names`. Modules keep their heavy imports inside ``Backend.load``, so finding
the backends (at Snakemake parse time) imports no PyMDP or JAX.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path

from memsweep.agents.base import (
    AgentSpec,
    Backend,
    Beliefs,
    Population,
    StepInput,
    StoredModel,
    build_model,
)

# Modules of this folder that are not backends.
_NOT_BACKENDS = {"base"}


class UnknownBackend(ValueError):
    pass


@functools.cache
def _registry() -> dict[str, tuple[str, Backend]]:
    """backend name -> (module name, BACKEND), for every backend module in this folder."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_BACKENDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        backend = getattr(module, "BACKEND", None)
        if not isinstance(backend, Backend):
            raise TypeError(f"{module.__file__}: a backend module must define BACKEND = <Backend>")
        if backend.name.replace("-", "_") != info.name:
            raise ValueError(
                f"{module.__file__}: backend {backend.name!r} must live in "
                f"{backend.name.replace('-', '_')}.py (a job imports its own backend's module)"
            )
        if backend.name in found:
            raise ValueError(f"backend {backend.name!r} is defined twice ({info.name}.py)")
        found[backend.name] = (info.name, backend)
    return found


def names() -> tuple[str, ...]:
    """Every backend's name, in the order of their modules' names."""
    return tuple(_registry())


@functools.cache  # Snakemake asks once per job while it plans: one import each
def get(name: str) -> Backend:
    """The backend named ``name``; an unknown name raises :class:`UnknownBackend`.

    A backend's module is named after it (``pymdp-jax`` -> ``pymdp_jax.py``), so a job
    imports its own backend's module only: the measured process holds no sibling's code,
    and the job's code digest (its backend's module) covers all it runs.
    """
    module_name = name.replace("-", "_")
    if module_name.isidentifier() and module_name not in _NOT_BACKENDS:
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{module_name}":
                raise
        else:
            backend = getattr(module, "BACKEND", None)
            if isinstance(backend, Backend) and backend.name == name:
                return backend
    try:
        return _registry()[name][1]
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r}; known: {', '.join(names())}") from None


def module_path(name: str) -> Path:
    """The source file of a backend: its jobs' code digest, so an edit reruns that backend only."""
    get(name)
    return Path(__file__).with_name(_registry()[name][0] + ".py")


__all__ = [
    "AgentSpec",
    "Backend",
    "Beliefs",
    "Population",
    "StepInput",
    "StoredModel",
    "UnknownBackend",
    "build_model",
    "get",
    "module_path",
    "names",
]
