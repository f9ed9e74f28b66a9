"""The package's shape: stages import only the stages below them, and nothing cycles.

The layers, lowest first (docs/DESIGN.md explains each): shared helpers, ``world``,
``agents``, ``plan``, ``results``, ``harness``, ``report``, then the entry points
(``workflow``, ``cli``) and the public face (``memsweep/__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "memsweep"
LAYERS = {
    "files": 0,
    "logs": 0,
    "world": 1,
    "agents": 2,
    "plan": 3,
    "results": 4,
    "harness": 5,
    "report": 6,
    "workflow": 7,
    "cli": 7,
    "progress": 7,
    "__init__": 8,
}


def _unit(path: Path) -> str:
    """The layer a source file belongs to: its top-level folder or module under memsweep/."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """The memsweep units a file imports (absolute imports: the package uses no relative ones)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use memsweep.<stage>")
        names = []
        if isinstance(node, ast.ImportFrom) and node.module == "memsweep":
            # ``__version__`` is a constant, not a dependency on the public face.
            names = [f"memsweep.{a.name}" for a in node.names if a.name != "__version__"]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "memsweep":
                continue
            found.add(parts[1] if len(parts) > 1 and parts[1] in LAYERS else "__init__")
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer():
    units = {_unit(p) for p in SOURCES}
    assert units <= set(LAYERS), f"add {sorted(units - set(LAYERS))} to LAYERS and DESIGN.md"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    unit = _unit(path)
    upward = [name for name in _imports(path) if name != unit and LAYERS[name] >= LAYERS[unit]]
    assert not upward, f"{path.relative_to(PACKAGE)} ({unit}) imports {upward} at or above it"
