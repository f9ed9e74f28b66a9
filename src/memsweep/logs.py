"""Send a workflow step's output to its Snakemake log file."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path


@contextlib.contextmanager
def logged(path: str | Path):
    """Redirect stdout and stderr into ``path`` for the duration of the block."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield log
        except BaseException:
            import traceback

            traceback.print_exc(file=log)
            raise
        finally:
            sys.stdout.flush()
