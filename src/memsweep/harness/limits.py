"""A hard memory limit for one child process, where the kernel offers one: a cgroup.

The supervisor's polls and its check after exit stop a job past its cap, but a child
can allocate faster than a poll comes round and take the machine down first. A memory
cgroup makes the kernel itself refuse: past the limit it reclaims page cache, then
kills the child (an OOM kill, counted in the cgroup's events). :func:`create` makes one
cgroup per child, in the first place that allows it:

1. cgroup v2: a child of this process's own cgroup (``0::/path`` in
   ``/proc/self/cgroup``) or of its parent, wherever ``memory`` is already enabled in
   ``cgroup.subtree_control`` (a delegated subtree); ``memory.max`` is the limit,
   ``memory.swap.max`` = 0 so the child cannot swap instead of being stopped, and
   ``memory.oom.group`` = 1 so the kernel kills the whole tree.
2. cgroup v1: a child of this process's memory cgroup (``N:memory:/path``):
   ``memory.limit_in_bytes`` and, where swap is accounted, the same figure in
   ``memory.memsw.limit_in_bytes`` (memory and swap together).

Otherwise there is no hard limit, and the reason says why. An address-space limit
(``RLIMIT_AS``) is never used instead: numpy's BLAS threads and XLA reserve gigabytes of
virtual address space they never touch, so a limit on it near the cap would kill
healthy jobs while measuring nothing the cap is about (resident memory).

The child joins the cgroup before it runs anything (:meth:`HardLimit.command`), and the
cgroup is removed when the child is gone (:meth:`HardLimit.remove`).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
# How the supervisor tells its worker what enforced the cap (the record's
# ``cap_enforcement`` column, see memsweep.harness.measure.provenance).
RECORD_VARIABLE = "MEMSWEEP_CAP_ENFORCEMENT"
PREFIX = "memsweep-"
# Above the cap: room for what the kernel charges to a cgroup and the polls do not see
# (page tables, the kernel's own objects, page cache not yet reclaimed), so that the
# supervisor's polls usually stop a job first, with their clearer reason.
MARGIN_FRACTION = 0.05
MARGIN_MIN_BYTES = 32_000_000
# A killed child leaves its cgroup a few milliseconds after it is reaped.
REMOVE_TRIES, REMOVE_PAUSE_SECONDS = 100, 0.01
_numbers = itertools.count()


def with_margin(cap_bytes: float) -> int:
    """The hard limit for a job capped at ``cap_bytes``: the cap plus a small margin."""
    return int(cap_bytes + max(MARGIN_FRACTION * cap_bytes, MARGIN_MIN_BYTES))


@dataclass(frozen=True)
class NoLimit:
    """No hard limit: the child runs as it is, only polled; ``reason`` says why."""

    reason: str

    def command(self, command: list[str]) -> list[str]:
        return command

    def oom_kills(self) -> int:
        return 0

    def remove(self) -> None:
        pass


@dataclass(frozen=True)
class HardLimit:
    """A cgroup made for one child, with its memory limit written."""

    folder: Path
    version: int  # 1 or 2
    limit_bytes: int
    settings: tuple[tuple[str, str], ...]  # (file, value) of the limits written

    def describe(self) -> str:
        """Which files hold the limit, e.g. ``cgroup v1 memory.limit_in_bytes=437 MB``."""
        parts = [f"{name}={_megabytes(value)}" for name, value in self.settings]
        return f"cgroup v{self.version} " + ", ".join(parts)

    def command(self, command: list[str]) -> list[str]:
        """``command``, joining the cgroup before it starts.

        A ``/bin/sh`` trampoline writes its own pid into ``cgroup.procs`` and then
        ``exec``s the command in the same process, so nothing the child allocates is
        outside the limit. ``subprocess``'s ``preexec_fn`` could do the same, but Python
        documents it as unsafe when the parent has threads. If the write fails, the
        command does not run: the job fails, saying why, rather than run unlimited.
        """
        join = 'echo $$ > "$1" && shift && exec "$@"'
        procs = str(self.folder / "cgroup.procs")
        return ["/bin/sh", "-c", join, "memsweep-cgroup", procs, *command]

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this cgroup for passing its limit."""
        events = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.folder / events).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def remove(self) -> None:
        """Remove the cgroup, once the processes the supervisor killed have left it."""
        _remove(self.folder)


def _megabytes(value: str) -> str:
    return f"{int(value) / 1e6:.0f} MB" if int(value) else "0"


class _Unavailable(Exception):
    """A kind of cgroup that cannot hold the child here (the message says why)."""


def create(limit_bytes: int, root: Path = ROOT, proc_cgroup: Path = PROC_CGROUP):
    """A cgroup holding ``limit_bytes`` for one child, or :class:`NoLimit` and the reason.

    ``root`` (where the cgroup file systems are mounted) and ``proc_cgroup`` (this
    process's cgroups) are parameters so that tests can point them to a fake tree.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError as error:
        return NoLimit(f"no cgroups ({proc_cgroup}: {error.strerror})")
    reasons = []
    for version, make in ((2, _make_v2), (1, _make_v1)):
        try:
            return make(limit_bytes, root, lines)
        except _Unavailable as why:
            reasons.append(f"cgroup v{version}: {why}")
    return NoLimit("no writable memory cgroup (" + "; ".join(reasons) + ")")


def _own_path(lines: list[str], wanted) -> str | None:
    """The cgroup path of the first ``id:controllers:path`` line that ``wanted`` accepts."""
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) == 3 and wanted([c for c in fields[1].split(",") if c]):
            return fields[2]
    return None


def _make_v2(limit_bytes: int, root: Path, lines: list[str]) -> HardLimit:
    path = _own_path(lines, lambda controllers: not controllers)  # the line "0::/path"
    if path is None:
        raise _Unavailable("this process is in no v2 cgroup")
    # Only v2 mounted (at root), or both, v2 beside the v1 controllers (root/unified).
    mounted = [h for h in (root, root / "unified") if (h / "cgroup.controllers").is_file()]
    if not mounted:
        raise _Unavailable(f"not mounted at {root}")
    hierarchy = mounted[0]
    own = hierarchy / path.lstrip("/")
    if not own.is_dir():
        raise _Unavailable(f"this process's cgroup {path} is not under {hierarchy}")
    # A cgroup with processes in it cannot enable controllers for children (the "no
    # internal processes" rule), so the memory cgroup goes where memory is enabled
    # already: under this process's cgroup or, in a delegated subtree, beside it.
    why: list[str] = []
    for parent in dict.fromkeys((own, own.parent if own != hierarchy else own)):
        if "memory" not in _read(parent / "cgroup.subtree_control").split():
            why.append(f"memory is not enabled in {parent}/cgroup.subtree_control")
        elif not os.access(parent / "cgroup.procs", os.W_OK):  # moving a process needs it
            why.append(f"{parent}/cgroup.procs is not writable")
        elif (folder := _new_folder(parent, why)) and _write(
            folder, "memory.max", str(limit_bytes), why
        ):
            settings = [("memory.max", str(limit_bytes))]
            # No swapping instead of being stopped, where swap is accounted.
            if _write(folder, "memory.swap.max", "0"):
                settings.append(("memory.swap.max", "0"))
            _write(folder, "memory.oom.group", "1")  # an OOM kill takes the whole tree
            return HardLimit(folder, 2, limit_bytes, tuple(settings))
    raise _Unavailable("; ".join(why))


def _make_v1(limit_bytes: int, root: Path, lines: list[str]) -> HardLimit:
    path = _own_path(lines, lambda controllers: "memory" in controllers)
    if path is None:
        raise _Unavailable("this process is in no memory cgroup")
    hierarchy = root / "memory"
    if not (hierarchy / "memory.limit_in_bytes").is_file():
        raise _Unavailable(f"the memory controller is not mounted at {hierarchy}")
    own = hierarchy / path.lstrip("/")
    if not own.is_dir():
        raise _Unavailable(f"this process's memory cgroup {path} is not under {hierarchy}")
    why: list[str] = []
    folder = _new_folder(own, why)
    if folder is None or not _write(folder, "memory.limit_in_bytes", str(limit_bytes), why):
        raise _Unavailable("; ".join(why))
    settings = [("memory.limit_in_bytes", str(limit_bytes))]
    # Memory and swap together, where swap is accounted (written after the memory limit:
    # the kernel refuses a memsw limit below it).
    if _write(folder, "memory.memsw.limit_in_bytes", str(limit_bytes)):
        settings.append(("memory.memsw.limit_in_bytes", str(limit_bytes)))
    return HardLimit(folder, 1, limit_bytes, tuple(settings))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _new_folder(parent: Path, why: list[str]) -> Path | None:
    """A new cgroup under ``parent`` named for this process, after removing those that
    supervisors which died without cleaning up left there; None (and why) if refused."""
    _remove_stale(parent)
    folder = parent / f"{PREFIX}{os.getpid()}-{next(_numbers)}"
    try:
        folder.mkdir()
    except OSError as error:
        why.append(f"cannot create a cgroup in {parent} ({error.strerror})")
        return None
    return folder


def _write(folder: Path, name: str, value: str, why: list[str] | None = None) -> bool:
    """Write one setting. Where ``why`` is given, the setting is required: on a refusal
    the cgroup is removed and ``why`` says so. Otherwise it is optional (a file this
    kernel lacks, swap not accounted)."""
    try:
        (folder / name).write_text(value)
    except OSError as error:
        if why is not None:
            why.append(f"cannot write {folder / name} ({error.strerror})")
            _remove(folder)
        return False
    return True


def _remove(folder: Path) -> None:
    """``rmdir`` the cgroup, waiting while killed processes still leave it (EBUSY)."""
    for _ in range(REMOVE_TRIES):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if error.errno != errno.EBUSY:
                break
        time.sleep(REMOVE_PAUSE_SECONDS)
    print(f"memsweep: could not remove the cgroup {folder}", file=sys.stderr)


def _remove_stale(parent: Path) -> None:
    """Remove the empty cgroups of supervisors that no longer run (killed outright)."""
    for folder in parent.glob(f"{PREFIX}*"):
        pid = folder.name.removeprefix(PREFIX).split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                folder.rmdir()  # refused while a process is still in it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
