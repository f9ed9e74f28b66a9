"""The public face: every name in ``memsweep.__all__`` resolves, and importing it is cheap."""

from __future__ import annotations

import subprocess
import sys

import memsweep


def test_every_public_name_resolves():
    for name in memsweep.__all__:
        assert getattr(memsweep, name) is not None, name
    assert set(dir(memsweep)) == set(memsweep.__all__)


def test_importing_memsweep_loads_no_heavy_library():
    # Snakemake imports memsweep while it parses a sweep: that must stay cheap.
    code = (
        "import sys, memsweep; "
        "print(sorted(m for m in ('pandas', 'jax', 'pymdp', 'scipy', 'matplotlib') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_readme_example_plans_and_names_a_job(root):
    planned = memsweep.plan_sweep(memsweep.load_config(root / "config" / "config.yaml"))
    assert planned and {p.status for p in planned} <= {"run", "unsupported", "over-budget"}
    job = memsweep.Job(
        backend="lean", storage="csr", dtype="float32", grid=20, agents=10,
        sharing="shared", policy_len=1,
    )  # fmt: skip
    assert job.states == 400 and len(job.config_id) == 12
    assert "lean" in memsweep.backends()
