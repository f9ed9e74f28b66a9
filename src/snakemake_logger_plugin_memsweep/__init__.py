"""``snakemake --logger memsweep``: the progress display of memsweep.progress.

Snakemake finds logger plugins by the name of a top-level package (this one), not by an
entry point; the code lives in the memsweep package.
"""

from memsweep.progress import LogHandler

__all__ = ["LogHandler"]
