"""Allocation sites: the line of code that allocated the bytes a probe holds.

A site is the first frame of an allocation's stack, from the most recent, that lies
outside the libraries the backends compute with (numpy, scipy, JAX and its helpers) and
Python's standard library: for an array that PyMDP's ``Agent.__init__`` made through
``numpy.ones`` and ``copy.deepcopy``, the line of ``Agent.__init__``, which is where a
PyMDP developer would change something. It is named ``file:line (function)``, the file
relative to the ``sys.path`` entry that holds it (``pymdp/legacy/agent.py``,
``memsweep/agents/lean.py``), so no home folder or checkout path enters a record.

Within :func:`tracing` (``FRAMES`` frames a stack), :func:`held` groups what
``tracemalloc`` holds by site; the harness builds the model and the agents once more in
it after a job's measurement (:meth:`memsweep.harness.measure.Measurement.allocation_sites`).
:mod:`memsweep.harness.profile` names ``memray``'s records with the same words.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import linecache
import sys
import sysconfig
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

# Top-level packages whose frames are skipped: the array libraries and their own helpers,
# and psutil, through which the harness's probes read /proc (its site is then the harness's).
LIBRARIES = frozenset(
    {"numpy", "scipy", "jax", "jaxlib", "equinox", "opt_einsum", "ml_dtypes", "jaxtyping",
     "psutil"}
)  # fmt: skip
# Frames tracemalloc keeps per allocation within tracing(). A numpy-based agent's build
# reaches its first frame outside the libraries within 12 frames; a JAX agent's allocates
# up to ~40 frames below pymdp (tracing and lowering): 48 reaches all but a few hundred
# bytes there. Any depth above 1 costs about the same (docs/data.md): CPython computes
# the line number of every frame kept, at every allocation.
FRAMES = 48
TOP = 10  # sites recorded per build operation, largest first
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
# The harness's own allocations (its records, its probes' readings, the sites of the model
# kept for the agents' figures) are not the job's: a site in this folder is left out.
_HARNESS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Site:
    name: str
    bytes: int
    count: int


@functools.cache
def relative(filename: str) -> str:
    """``filename`` relative to the longest ``sys.path`` entry that holds it; the bare file
    name where none does (no absolute path leaves the process)."""
    path = Path(filename).resolve()
    best = None
    for root in _roots(tuple(sys.path)):
        if path.is_relative_to(root) and (best is None or len(root.parts) > len(best.parts)):
            best = root
    return (path.relative_to(best) if best else Path(path.name)).as_posix()


@functools.cache
def _roots(entries: tuple[str, ...]) -> tuple[Path, ...]:
    """The ``sys.path`` entries resolved, once per ``sys.path`` (a resolution is a system
    call per path component; a JAX job names some hundred files)."""
    return tuple(Path(entry).resolve() for entry in entries if entry)


@functools.cache
def is_library(filename: str) -> bool:
    """Whether a frame of ``filename`` is a library's: skipped when looking for a site."""
    if filename.startswith("<"):  # frozen importlib, generated code: never the caller's
        return True
    path = Path(filename).resolve()
    if "site-packages" not in path.parts and path.is_relative_to(_STDLIB):
        return True
    top = relative(filename).split("/", 1)[0]
    return top in LIBRARIES


@functools.cache
def is_harness(filename: str) -> bool:
    """Whether ``filename`` is the harness's own code (its sites are left out)."""
    return Path(filename).resolve().parent == _HARNESS


@functools.cache
def _functions(filename: str) -> tuple[tuple[int, int, str], ...]:
    """Every function of a source file as (first line, last line, name), for lookups."""
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return ()
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return tuple(
        (node.lineno, node.end_lineno or node.lineno, node.name)
        for node in ast.walk(tree)
        if isinstance(node, kinds)
    )


def function_at(filename: str, lineno: int) -> str:
    """The innermost function whose body holds ``lineno`` (``<module>`` outside any)."""
    holding = [(start, name) for start, end, name in _functions(filename) if start <= lineno <= end]
    return max(holding)[1] if holding else "<module>"


def name(filename: str, lineno: int, function: str | None = None) -> str:
    """A site's name: ``file:line (function)``, the function looked up when not given or
    when a frame names a comprehension's (``<listcomp>``: memray's frames do, tracemalloc's
    carry none), so that one line has one name whichever probe found it."""
    if not function or function.startswith("<"):
        found = function_at(filename, lineno)
        function = found if found != "<module>" or not function else function
    return f"{relative(filename)}:{lineno} ({function})"


def site_of(traceback: tracemalloc.Traceback) -> tuple[str, int, str]:
    """(filename, line, note) of the first frame outside the libraries, most recent first.

    Where every frame kept is a library's, the outermost one kept, with a note saying
    why: the stack was deeper than the frames kept, or held no frame outside them.
    """
    for frame in reversed(traceback):  # tracemalloc lists the oldest frame first
        if not is_library(frame.filename):
            return frame.filename, frame.lineno, ""
    outermost = traceback[0]
    deeper = (traceback.total_nframe or 0) > len(traceback)
    note = f" [deeper than {len(traceback)} frames]" if deeper else " [library frames only]"
    return outermost.filename, outermost.lineno, note


@contextlib.contextmanager
def tracing(frames: int = FRAMES):
    """tracemalloc on, keeping ``frames`` frames of each allocation's stack; off after."""
    if tracemalloc.is_tracing():
        raise RuntimeError("tracemalloc is already tracing: its depth cannot change")
    tracemalloc.start(frames)
    try:
        yield
    finally:
        tracemalloc.stop()


def held() -> dict[tuple[str, int, str], list[int]]:
    """What tracemalloc holds now, by site: (filename, line, note) -> [bytes, count].

    The snapshot is dropped before returning; only the grouped sizes are kept (a few
    hundred entries). Allocations made by the harness itself are left out.
    """
    grouped: dict[tuple[str, int, str], list[int]] = {}
    # Grouped by whole traceback first: identical stacks are looked at once.
    for statistic in tracemalloc.take_snapshot().statistics("traceback"):
        site = site_of(statistic.traceback)
        if is_harness(site[0]):
            continue
        totals = grouped.setdefault(site, [0, 0])
        totals[0] += statistic.size
        totals[1] += statistic.count
    return grouped


def top(now: dict, before: dict | None = None, count: int = TOP) -> list[Site]:
    """The ``count`` sites that gained most bytes since ``before`` (all of ``now`` without
    it), named; sites that gained nothing are left out."""
    before = before or {}
    gained = []
    for key, (size, number) in now.items():
        size_before, number_before = before.get(key, (0, 0))
        if size > size_before:
            gained.append((size - size_before, number - number_before, key))
    gained.sort(key=lambda item: item[0], reverse=True)
    return [
        Site(name(filename, lineno) + note, size, number)
        for size, number, (filename, lineno, note) in gained[:count]
    ]
