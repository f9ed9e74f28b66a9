"""Every world by name: the ones memsweep ships, and a user's (an import path or a file).

The shipped worlds are the ``WORLDS`` of the modules listed in :data:`_MODULES`; the
``world`` setting's choices, the config schema and the docs ask :func:`names`.
"""

from __future__ import annotations

import functools
import importlib

from memsweep.world.base import DEFAULT_WORLD, World
from memsweep.world.user import FileWorld, FunctionWorld, is_user_world

_MODULES = ("gridworld", "pymdp_envs")
# A user's world, as a config names it: a .npz file, or package.module:function.
USER_PATTERN = r"(\.npz$)|(^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$)"


class UnknownWorld(ValueError):
    pass


@functools.cache
def _shipped() -> dict[str, World]:
    found: dict[str, World] = {}
    for module_name in _MODULES:
        for world in importlib.import_module(f"memsweep.world.{module_name}").WORLDS:
            if world.name in found:
                raise ValueError(f"world {world.name!r} is defined twice")
            found[world.name] = world
    return found


def names() -> tuple[str, ...]:
    """The shipped worlds' names, the default first."""
    shipped = _shipped()
    return (DEFAULT_WORLD, *sorted(n for n in shipped if n != DEFAULT_WORLD))


@functools.cache
def get(name: str) -> World:
    """The world named ``name``: a shipped one, ``module:function`` or a ``.npz`` file."""
    shipped = _shipped()
    if name in shipped:
        return shipped[name]
    if name.endswith(".npz"):
        return FileWorld(name)
    if is_user_world(name):
        return FunctionWorld(name)
    raise UnknownWorld(
        f"unknown world {name!r}; known: {', '.join(names())}, or a model of your own "
        "('package.module:function' or a .npz file, see config/README.md)"
    )
