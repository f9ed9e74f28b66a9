"""Digest coverage: every module a measure job runs is in the code digest of its rule.

A measure job reruns when its code changes, as far as its digest knows the code
(``memsweep.workflow.HARNESS`` plus the job's backend module, see ``sources``). Here the
real ``memsweep measure`` runs one tiny job per backend, with a ``sitecustomize`` that
records, in every process of the job as it exits (the command's own, which supervises,
and the worker's), which memsweep modules it imported. A module outside the digest is
code whose edit would leave stale results behind: the test names each one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memsweep import agents, workflow
from memsweep.plan.jobs import Job, unsupported_reason

from .conftest import memsweep
from .test_caps import stand_in_reference

SITECUSTOMIZE = """
import atexit, json, os, sys


def _record():
    folder = os.environ.get("MEMSWEEP_IMPORT_TRACE")
    if not folder:
        return
    modules = {
        name: getattr(module, "__file__", None)
        for name, module in list(sys.modules.items())
        if name == "memsweep" or name.startswith("memsweep.")
    }
    with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as handle:
        json.dump({"argv": sys.argv, "modules": modules}, handle)


atexit.register(_record)
"""


def supported_job(backend: str) -> Job:
    """The smallest job ``backend`` can run: grid 2, one agent, two steps."""
    for storage in ("dense", "csr", "csc", "coo"):
        for dtype in ("float64", "float32", "float16"):
            job = Job(backend, storage, dtype, 2, 1, "shared", 1, steps=2, repeats=1)
            if unsupported_reason(job) is None:
                return job
    raise AssertionError(f"{backend} supports no storage and dtype")


def run_traced(job: Job, folder: Path) -> list[dict]:
    """Run ``job`` through the real ``memsweep measure``; each process's memsweep modules."""
    trace, hooks = folder / "trace", folder / "hooks"
    trace.mkdir()
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    reference = stand_in_reference(folder / "reference.npz", job.grid, job.steps)
    path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH")) if p)
    result = memsweep(
        "measure", *job_options(job), "--reference", str(reference),
        "--out", str(folder / "m.parquet"),
        env={**os.environ, "PYTHONPATH": path, "MEMSWEEP_IMPORT_TRACE": str(trace)},
    )  # fmt: skip
    assert ": ok (" in result.stdout, result.stdout + result.stderr
    return [json.loads(p.read_text()) for p in sorted(trace.glob("*.json"))]


def job_options(job: Job) -> list[str]:
    options = []
    for name, value in job.to_dict().items():
        options += [f"--{name.replace('_', '-')}", str(value)]
    return options


def covered(job: Job) -> set[Path]:
    return {Path(p).resolve() for p in (*workflow.HARNESS, agents.module_path(job.backend))}


def sibling_listed_by_the_command(process: dict, path: Path, job: Job) -> bool:
    """The command lists every backend (``--backend``'s choices); another backend's code
    never runs in the measured process, which imports its own backend only."""
    backends = {agents.module_path(name).resolve() for name in agents.names()}
    return role(process["argv"]) == "command" and path in backends


def role(argv: list[str]) -> str:
    return "worker" if argv and argv[0].endswith("worker.py") else "command"


@pytest.mark.parametrize("backend", agents.names())
def test_every_module_a_measure_job_imports_is_in_its_digest(backend, tmp_path):
    job = supported_job(backend)
    processes = run_traced(job, tmp_path)
    roles = sorted(role(p["argv"]) for p in processes)
    assert roles == ["command", "worker"], [p["argv"] for p in processes]
    digest = covered(job)
    package = workflow.PACKAGE
    outside = {}
    for process in processes:
        for name, file in process["modules"].items():
            assert file, f"{name} has no file"
            path = Path(file).resolve()
            assert path.is_relative_to(package), f"{name} comes from {path}, not {package}"
            if path in digest or sibling_listed_by_the_command(process, path, job):
                continue
            outside.setdefault(name, set()).add(role(process["argv"]))
    named = [f"{name} ({' and '.join(sorted(where))})" for name, where in sorted(outside.items())]
    assert not outside, (
        f"a {backend} measure job imports modules outside its code digest "
        f"(memsweep.workflow.HARNESS + its backend's module): {', '.join(named)}"
    )


def test_the_trace_sees_what_the_worker_imports(tmp_path):
    # The recorder itself: a plain interpreter with the hook records what it imported.
    (tmp_path / "trace").mkdir()
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    trace = {"PYTHONPATH": str(tmp_path), "MEMSWEEP_IMPORT_TRACE": str(tmp_path / "trace")}
    env = {**os.environ, **trace}
    subprocess.run([sys.executable, "-c", "import memsweep.files"], env=env, check=True)
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "trace").glob("*.json")]
    assert set(record["modules"]) == {"memsweep", "memsweep.files"}
