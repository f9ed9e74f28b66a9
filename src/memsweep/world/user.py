"""A user's own model as a world: a function named by its import path, or a file of arrays.

``world: ["mypackage.models:build"]`` calls ``build`` with the settings it names among
:class:`~memsweep.world.base.WorldSettings`' fields (``grid``, ``seed``…); it returns a
:class:`~memsweep.world.model.Model` or a dict with its ``A``, ``B``, ``C`` and ``D``
lists (and ``A_dependencies``, ``B_dependencies`` where factors depend on others).
``world: ["models/mine.npz"]`` reads ``A_0``, ``A_1``…, ``B_0``…, ``C_0``…, ``D_0``…
and, where needed, ``A_dependencies`` and ``B_dependencies`` as JSON strings; a file
has one size, so a sweep runs it once, at its smallest grid. Either is checked
(:meth:`Model.check`) before any job starts. ``config/README.md`` has the whole contract
and an example.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import fields
from pathlib import Path

from memsweep.world.base import World, WorldSettings
from memsweep.world.model import Model, ModelError


def is_user_world(name: str) -> bool:
    return name.endswith(".npz") or ":" in name


class FunctionWorld(World):
    """The model a user's function returns; built in the reference's process (it may
    import anything), read by the measured process from the reference's file."""

    about = "a user's model, built by their function"

    def __init__(self, name: str):
        self.name = name

    def function(self):
        module_name, _, attribute = self.name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ModelError(
                f"world {self.name!r}: cannot import {module_name!r}: {error}"
            ) from error
        found = getattr(module, attribute, None)
        if not callable(found):
            raise ModelError(f"world {self.name!r}: {module_name} has no function {attribute!r}")
        return found

    def model(self, settings: WorldSettings) -> Model:
        function = self.function()
        parameters = inspect.signature(function).parameters
        names = [f.name for f in fields(WorldSettings)]
        arguments = {n: getattr(settings, n) for n in names if n in parameters}
        built = function(**arguments)
        if isinstance(built, dict):
            missing = [key for key in ("A", "B", "C", "D") if key not in built]
            if missing:
                raise ModelError(f"world {self.name!r}: the model has no {', '.join(missing)}")
            built = Model(
                **{key: list(built[key]) for key in ("A", "B", "C", "D")},
                A_dependencies=list(built.get("A_dependencies") or []),
                B_dependencies=list(built.get("B_dependencies") or []),
            )
        if not isinstance(built, Model):
            raise ModelError(
                f"world {self.name!r}: returned {type(built).__name__}, "
                "not a dict of A, B, C, D lists or a memsweep Model"
            )
        return _checked(self.name, built)

    def __eq__(self, other):
        return type(other) is type(self) and other.name == self.name

    def __hash__(self):
        return hash((type(self), self.name))


class FileWorld(FunctionWorld):
    """The model in a ``.npz`` file: numpy only, so built in the measured process."""

    about = "a user's model, read from a file of arrays"
    in_process = True
    fixed_size = "a model read from a file has one size"

    def model(self, settings: WorldSettings) -> Model:
        path = Path(self.name)
        if not path.is_file():
            raise ModelError(f"world {self.name!r}: no such file")
        try:
            return _checked(self.name, Model.load(path))
        except (OSError, ValueError) as error:
            if isinstance(error, ModelError):
                raise
            raise ModelError(f"world {self.name!r}: cannot read it: {error}") from error


def _checked(name: str, model: Model) -> Model:
    problems = model.problems()
    if problems:
        raise ModelError(f"world {name!r}: " + "; ".join(problems))
    return model
