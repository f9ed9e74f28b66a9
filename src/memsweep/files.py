"""Files that no reader ever sees half-written."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def atomic(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary name beside ``path``; when the block ends it replaces ``path``.

    If the block raises, the temporary file is removed. The name starts with a dot and
    holds ``.tmp``, so readers of a results tree skip it and :func:`remove_partials`
    finds what a killed writer left behind. ``suffix`` is for writers that append
    their own (``np.savez`` adds ``.npz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def remove_partials(path: str | os.PathLike) -> None:
    """Remove the temporary files that killed writers of ``path`` left behind."""
    path = Path(path)
    for partial in path.parent.glob(f".{path.name}.tmp*"):
        partial.unlink(missing_ok=True)
