"""The kernel's hard memory limit: found where the kernel offers one, applied, recorded.

The unit tests point :func:`memsweep.harness.limits.create` at fake cgroup trees in
``tmp_path`` (cgroup v2, v2 beside v1, v1 alone, none), so they run on any machine.
The tests that need a real memory cgroup (root in a container, a delegated subtree)
skip where :func:`limits.create` finds none, saying why: there is no hard limit to
test, and the polls and the check after exit (tests/test_caps.py) still hold the cap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from memsweep.harness import limits, supervisor
from memsweep.plan.jobs import Job
from memsweep.results import schema

from .conftest import memsweep
from .test_caps import SPIKE_BACKEND, project_with_backend, stand_in_reference

MB = 1_000_000


def write(path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def read(folder, name: str) -> str:
    return (folder / name).read_text()


# Fake trees ------------------------------------------------------------------------------
def v2_tree(root, own_subtree: str, parent_subtree: str):
    """Only cgroup v2, this process in /work.slice/job (a leaf, as a process's cgroup is)."""
    write(root / "cgroup.controllers", "cpuset cpu io memory pids")
    write(root / "work.slice" / "cgroup.subtree_control", parent_subtree)
    write(root / "work.slice" / "cgroup.procs")
    write(root / "work.slice" / "job" / "cgroup.subtree_control", own_subtree)
    write(root / "work.slice" / "job" / "cgroup.procs")
    proc = root.parent / "proc-self-cgroup"
    write(proc, "0::/work.slice/job\n")
    return proc


def v1_tree(root, with_unified: bool = True):
    """The memory controller on v1 (as on this project's build machine), and an empty
    v2 hierarchy beside it that has no memory controller (hybrid mode)."""
    write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712")
    (root / "memory" / "api" / "abc").mkdir(parents=True)
    if with_unified:
        write(root / "unified" / "cgroup.controllers", "hugetlb")
        write(root / "unified" / "cgroup.subtree_control", "")
    proc = root.parent / "proc-self-cgroup"
    write(proc, "9:pids:/\n4:memory:/api/abc\n1:cpu,cpuacct:/\n0::/\n")
    return proc


def test_v2_puts_the_cgroup_where_memory_is_delegated(tmp_path):
    root = tmp_path / "cgroup"
    proc = v2_tree(root, own_subtree="", parent_subtree="cpu memory")
    limit = limits.create(500 * MB, root=root, proc_cgroup=proc)
    assert isinstance(limit, limits.HardLimit), limit
    # The process's own cgroup holds processes, so it cannot have children with memory:
    # the cgroup goes beside it, under the parent that delegates memory.
    assert limit.folder.parent == root / "work.slice"
    assert limit.folder.name.startswith(f"memsweep-{os.getpid()}-")
    assert read(limit.folder, "memory.max") == str(500 * MB)
    assert read(limit.folder, "memory.swap.max") == "0"  # no swapping instead of a stop
    assert read(limit.folder, "memory.oom.group") == "1"  # the whole tree goes at once
    assert limit.describe() == "cgroup v2 memory.max=500 MB, memory.swap.max=0"
    joined = limit.command(["python", "-m", "x"])
    assert joined[-3:] == ["python", "-m", "x"]
    assert str(limit.folder / "cgroup.procs") in joined
    assert limit.oom_kills() == 0  # no events file yet: nothing killed
    write(limit.folder / "memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    assert limit.oom_kills() == 1


def test_v2_uses_its_own_cgroup_when_memory_is_enabled_there(tmp_path):
    root = tmp_path / "cgroup"
    proc = v2_tree(root, own_subtree="memory", parent_subtree="memory")
    limit = limits.create(300 * MB, root=root, proc_cgroup=proc)
    assert isinstance(limit, limits.HardLimit), limit
    assert limit.folder.parent == root / "work.slice" / "job"


def test_v2_without_delegated_memory_is_no_limit_and_says_why(tmp_path):
    root = tmp_path / "cgroup"
    proc = v2_tree(root, own_subtree="", parent_subtree="cpu pids")
    limit = limits.create(300 * MB, root=root, proc_cgroup=proc)
    assert isinstance(limit, limits.NoLimit)
    assert "cgroup v2: memory is not enabled in" in limit.reason
    assert f"{root / 'work.slice'}/cgroup.subtree_control" in limit.reason
    assert "cgroup v1: this process is in no memory cgroup" in limit.reason
    assert not list(root.rglob("memsweep-*"))  # nothing made, nothing left


def test_v1_memory_beside_an_empty_v2_hierarchy(tmp_path):
    root = tmp_path / "cgroup"
    proc = v1_tree(root)
    limit = limits.create(437 * MB, root=root, proc_cgroup=proc)
    assert isinstance(limit, limits.HardLimit), limit
    assert limit.version == 1
    assert limit.folder.parent == root / "memory" / "api" / "abc"
    assert read(limit.folder, "memory.limit_in_bytes") == str(437 * MB)
    assert read(limit.folder, "memory.memsw.limit_in_bytes") == str(437 * MB)
    assert limit.describe() == (
        "cgroup v1 memory.limit_in_bytes=437 MB, memory.memsw.limit_in_bytes=437 MB"
    )
    write(limit.folder / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert limit.oom_kills() == 2


def test_v1_removes_cgroups_that_dead_supervisors_left(tmp_path):
    root = tmp_path / "cgroup"
    proc = v1_tree(root)
    own = root / "memory" / "api" / "abc"
    dead = own / "memsweep-999999999-0"  # above any pid Linux gives (pid_max ≤ 2^22)
    alive = own / f"memsweep-{os.getppid()}-0"  # a supervisor still running
    dead.mkdir()
    alive.mkdir()
    limit = limits.create(100 * MB, root=root, proc_cgroup=proc)
    assert isinstance(limit, limits.HardLimit)
    assert not dead.exists() and alive.exists()


def test_no_cgroups_at_all_is_no_limit_and_says_why(tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    proc = tmp_path / "proc-self-cgroup"
    write(proc, "0::/\n")
    limit = limits.create(100 * MB, root=root, proc_cgroup=proc)
    assert isinstance(limit, limits.NoLimit)
    assert limit.reason == (
        f"no writable memory cgroup (cgroup v2: not mounted at {root}; "
        "cgroup v1: this process is in no memory cgroup)"
    )
    assert limit.command(["python"]) == ["python"]  # the child runs as it is
    missing = limits.create(100 * MB, root=root, proc_cgroup=tmp_path / "absent")
    assert isinstance(missing, limits.NoLimit) and missing.reason.startswith("no cgroups (")


def test_the_limit_is_the_cap_plus_a_small_margin():
    for cap in (1 * MB, 100 * MB, 405 * MB, 4000 * MB, 64_000 * MB):
        margin = limits.with_margin(cap) - cap
        assert margin >= limits.MARGIN_MIN_BYTES
        assert margin <= max(limits.MARGIN_MIN_BYTES, 0.05 * cap) + 1


def test_the_record_names_what_enforced_the_cap():
    polls = "polls every 20 ms, post-exit peak"
    none = limits.NoLimit("no writable memory cgroup (cgroup v2: not mounted at /x)")
    assert supervisor._enforcement(none, 300) == (
        f"{polls} (no hard limit: no writable memory cgroup (cgroup v2: not mounted at /x))"
    )
    cgroup = limits.HardLimit(
        limits.ROOT / "x", 1, 332 * MB, (("memory.limit_in_bytes", str(332 * MB)),)
    )
    assert supervisor._enforcement(cgroup, 300) == (
        f"cgroup v1 memory.limit_in_bytes=332 MB, {polls}"
    )
    assert supervisor._enforcement(none, None) == "no memory cap"


# This machine's cgroups -------------------------------------------------------------------
@pytest.fixture
def own_cgroup():
    """The folder the supervisor's cgroups go in on this machine (skips where none)."""
    probe = limits.create(limits.MARGIN_MIN_BYTES)
    if isinstance(probe, limits.NoLimit):
        pytest.skip(f"no hard memory limit on this machine: {probe.reason}")
    probe.remove()
    return probe.folder.parent


def ours(folder) -> set[str]:
    return {p.name for p in folder.glob(f"{limits.PREFIX}*")}


def test_one_allocation_past_the_limit_is_killed_by_the_kernel(tmp_path, monkeypatch, own_cgroup):
    # The spike backend allocates 400 MB at once in its second call, on a worker of
    # ~150 MB; the polls are blind, so only the kernel can stop it while it runs.
    before = ours(own_cgroup)
    monkeypatch.setenv("PYTHONPATH", str(project_with_backend(tmp_path, "spike", SPIKE_BACKEND)))
    monkeypatch.setattr(supervisor, "_poll", lambda process: (0, 0))
    job = Job("spike", "dense", "float64", 3, 1, "shared", 1, steps=5, repeats=1)
    reference = stand_in_reference(tmp_path / "reference.npz", 3, 5)
    out, cap_mb = tmp_path / "m.parquet", 300
    hard_mb = round(limits.with_margin(cap_mb * MB) / MB)
    outcome = supervisor.measure_job(job, out, reference, cap_mb, log=tmp_path / "log")
    assert not outcome.ok, (tmp_path / "log").read_text()
    # Worded as every failure by the cap is (a rerun under a higher cap looks for it).
    assert outcome.reason.startswith(
        f"exceeded memory cap of {cap_mb} MB at phase step: "
        f"killed by the kernel's hard limit of {hard_mb} MB (cgroup v"
    )
    row = schema.read_measurements(out).to_pandas().iloc[0]
    assert (row.status, row.phase, row.operation) == ("failed", "failure", "step")
    assert row.reason == outcome.reason
    assert row.cap_enforcement.startswith("cgroup v")
    assert f"={hard_mb} MB" in row.cap_enforcement
    assert row.cap_enforcement.endswith(", polls every 20 ms, post-exit peak")
    assert ours(own_cgroup) <= before  # its cgroup is gone


def test_a_real_job_runs_under_the_limit_and_its_record_says_so(tmp_path, own_cgroup):
    before = ours(own_cgroup)
    reference = tmp_path / "reference.npz"
    job = Job("pymdp-numpy", "dense", "float64", 3, 1, "shared", 1, steps=3)
    assert supervisor.make_reference_file(job, reference).ok
    out, cap_mb = tmp_path / "lean.parquet", 600
    axes = ["--backend", "lean", "--storage", "csr", "--dtype", "float32", "--grid", "3"]
    tiny = ["--agents", "1", "--sharing", "shared", "--policy-len", "1", "--steps", "3"]
    result = memsweep(
        "measure", *axes, *tiny, "--repeats", "1", "--mem-cap-mb", str(cap_mb),
        "--reference", str(reference), "--out", str(out),
    )  # fmt: skip
    assert f"{out}: ok" in result.stdout, result.stdout + result.stderr
    frame = schema.read_measurements(out).to_pandas()
    assert set(frame.status) <= {"ok", "unavailable"}
    [enforcement] = frame.cap_enforcement.unique()
    hard_mb = round(limits.with_margin(cap_mb * MB) / MB)
    assert enforcement.startswith("cgroup v")
    assert f"={hard_mb} MB" in enforcement
    assert enforcement.endswith(", polls every 20 ms, post-exit peak")
    assert ours(own_cgroup) <= before  # its cgroup is gone


def test_a_child_that_cannot_join_does_not_run(tmp_path, own_cgroup, monkeypatch):
    # A cgroup removed before the child starts: the trampoline cannot write its pid, so
    # the command never runs (it would run without the limit).
    real = limits.create

    def gone(limit_bytes, *args, **kwargs):
        limit = real(limit_bytes, *args, **kwargs)
        limit.remove()
        return limit

    monkeypatch.setattr(limits, "create", gone)
    marker = tmp_path / "ran"
    program = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    outcome = supervisor.run_child([], 300, log=tmp_path / "log", program=program)
    assert not outcome.ok
    assert outcome.reason.startswith("exited with code ")
    assert "memsweep-cgroup" in outcome.reason  # the trampoline says what it could not do
    assert not marker.exists()


# A supervising process, as `memsweep measure` is, whose child sleeps under a cap.
SUPERVISE_A_SLEEPER = textwrap.dedent(
    """
    import sys
    from memsweep.harness import supervisor

    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    supervisor.run_child([], 300, log=sys.argv[1], program=sleeper)
    """
)


def test_a_stopped_supervisor_removes_the_cgroup(tmp_path, own_cgroup):
    script = tmp_path / "supervise.py"
    script.write_text(SUPERVISE_A_SLEEPER)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "log")])
    try:
        deadline = time.monotonic() + 60
        made = []
        while not made and time.monotonic() < deadline:  # the child has joined its cgroup
            made = [
                folder
                for folder in own_cgroup.glob(f"{limits.PREFIX}{process.pid}-*")
                if (folder / "cgroup.procs").read_text().strip()
            ]
            time.sleep(0.05)
        assert made, "the supervisor made no cgroup with its child in it"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        process.kill()
        process.wait()
    assert not made[0].exists()
