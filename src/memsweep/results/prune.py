"""Measurement files that the current sweep does not name.

The tree under ``results/measurements/`` keeps every file a sweep in its folder has
measured, so that a value dropped from the config and added back later reruns nothing.
The aggregate reads only the files the current plan names, and so do
``results/measurements.parquet`` and the report; a reader of the tree itself
(``pandas.read_parquet("results/measurements")``) sees them all. ``memsweep prune``
lists the others and, asked to, removes them with their hidden companions (a cap
sidecar ``.<name>.cap.json``), so that the tree holds the current sweep only.
"""

from __future__ import annotations

from pathlib import Path

from memsweep.plan.sweep import MEASUREMENTS, RUN, PlannedJob


def stale_files(root: str | Path, planned: list[PlannedJob]) -> list[Path]:
    """The measurement files under ``root`` that no runnable job of ``planned`` writes."""
    root = Path(root)
    current = {(root / p.path).resolve() for p in planned if p.status == RUN}
    tree = root / MEASUREMENTS
    return [path for path in sorted(tree.rglob("*.parquet"))
            if not path.name.startswith(".") and path.resolve() not in current]  # fmt: skip


def remove(files: list[Path], root: str | Path) -> int:
    """Remove ``files``, their hidden companions and the folders left empty; returns how
    many paths were removed."""
    removed = 0
    tree = (Path(root) / MEASUREMENTS).resolve()
    for path in files:
        for companion in path.parent.glob(f".{path.name}*"):
            companion.unlink()
            removed += 1
        path.unlink()
        removed += 1
        folder = path.parent.resolve()
        while folder != tree and tree in folder.parents and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    return removed
