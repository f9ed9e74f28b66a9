"""A measured child computes on one thread, whatever the machine offers."""

from __future__ import annotations

import subprocess
import sys

from memsweep.harness import supervisor


def test_the_child_environment_is_single_threaded(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    environment = supervisor.child_environment(EXTRA="x")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert environment[name] == "1"
    assert environment["XLA_FLAGS"] == supervisor.SINGLE_THREADED["XLA_FLAGS"]
    assert environment["EXTRA"] == "x"


def test_a_users_xla_flags_are_kept_after_ours(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/dump")
    flags = supervisor.child_environment()["XLA_FLAGS"].split()
    assert flags[-1] == "--xla_dump_to=/tmp/dump"  # the last of a flag given twice wins
    assert "--xla_cpu_multi_thread_eigen=false" in flags


def test_xla_accepts_the_flags():
    # An unknown flag in XLA_FLAGS aborts the process at JAX's first computation.
    code = "import jax.numpy as j; print(float((j.ones((64, 64)) @ j.ones((64, 64))).sum()))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=supervisor.child_environment(JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(64.0 * 64 * 64)
