"""When a job that the memory cap stopped runs again: only under a cap above its peak.

The cap (``budget.max_job_mb``) reaches a measure job as a Snakemake resource, which is
no rerun trigger: a changed budget reruns no measurement by itself. The one job a new
cap should rerun is one the cap stopped, and only when the new cap is above the peak
that job reached (below it, it would be stopped again). Snakemake reruns a job when its
params differ from those of its last run, so the measure rule's params carry
:func:`marker`, which changes exactly then.

That needs the job's history, which Snakemake does not keep: ``memsweep measure`` leaves
a sidecar beside its output (``.<name>.cap.json``) when the cap stopped it, holding the
peak it reached and the marker it ran with, and updates it at every later run; the
workflow reads the sidecars once per parse. The command computes the marker it ran with
from its own cap and the sidecar it found, as the workflow did for it, so no marker is
passed along. The name starts with a dot: readers of the measurement tree (pyarrow,
pandas, :mod:`memsweep.results.schema`) skip it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from memsweep.files import atomic

# How the supervisor words a failure by the cap ("exceeded memory cap of 4000 MB at …").
CAP_EXCEEDED = "exceeded memory cap"
SUFFIX = ".cap.json"


@dataclass(frozen=True)
class CapHistory:
    """What a job's sidecar holds about its last run."""

    # The peak (MB, rounded up; at least the cap) the last run reached when the cap stopped
    # it; None when the last run was not stopped by the cap.
    failed_peak_mb: int | None
    # The marker the last run ran with (what Snakemake recorded among its params).
    ran_with: str


def sidecar(out: str | Path) -> Path:
    """The sidecar of the measurement file ``out``: ``.<name>.cap.json`` beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}{SUFFIX}")


def marker(cap_mb: float | None, history: CapHistory | None) -> str:
    """The measure rule's ``cap_retry`` param for a job run under ``cap_mb``.

    Empty for a job the cap never stopped; for one it stopped, a new value once the cap
    is above the peak it reached, else the marker of its last run (so it stays as it
    was, whether the cap is lowered or raised short of the peak). No cap is above every
    peak.
    """
    if history is None:
        return ""
    peak = history.failed_peak_mb
    if peak is not None and (cap_mb is None or cap_mb > peak):
        return f"cap above {peak} MB"
    return history.ran_with


def read(out: str | Path) -> CapHistory | None:
    """The history in ``out``'s sidecar; None without one (or with one no writer made:
    the sidecar is written atomically)."""
    try:
        found = json.loads(sidecar(out).read_text())
        peak = found["failed_peak_mb"]
        return CapHistory(None if peak is None else int(peak), str(found["ran_with"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(out: str | Path, history: CapHistory) -> Path:
    path = sidecar(out)
    with atomic(path) as temporary:
        temporary.write_text(json.dumps(asdict(history)) + "\n")
    return path


def record(
    out: str | Path,
    cap_mb: float | None,
    before: CapHistory | None,
    reason: str | None,
    peak_bytes: int,
) -> CapHistory | None:
    """Update ``out``'s sidecar after a run under ``cap_mb`` that ended with ``reason``
    (None: it succeeded) at ``peak_bytes``; ``before`` is the sidecar the run started with.

    A run the cap stopped records its peak; any other run of a job that has a sidecar
    clears the peak, keeping the marker it ran with; a job the cap never stopped gets none.
    """
    ran_with = marker(cap_mb, before)
    if reason is not None and reason.startswith(CAP_EXCEEDED):
        # The job needs more than the cap it passed, whatever peak was seen: the kernel's
        # hard limit can kill it before a poll saw it resident above the cap.
        needed_mb = max(peak_bytes / 1e6, cap_mb or 0)
        history = CapHistory(math.ceil(needed_mb), ran_with)
    elif before is not None:
        history = CapHistory(None, ran_with)
    else:
        return None
    write(out, history)
    return history


def histories(root: str | Path) -> dict[str, CapHistory]:
    """Every sidecar under ``root``, keyed by its measurement file's path (as ``root`` is
    given: relative paths stay relative, as the workflow's outputs are)."""
    found = {}
    # os.walk: half the time of Path.rglob over a tree of thousands of measurements (the
    # workflow reads it at every parse, dry runs included).
    for folder, _, names in os.walk(root):
        for name in names:
            if name.startswith(".") and name.endswith(SUFFIX):
                out = Path(folder, name[1 : -len(SUFFIX)])
                history = read(out)
                if history is not None:
                    found[out.as_posix()] = history
    return found
