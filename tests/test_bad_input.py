"""Malformed configs get a clear error naming the key, and start nothing."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from .test_workflow import SNAKEMAKE, TINY, copy_workflow

pytestmark = pytest.mark.workflow


def with_change(path: str, value):
    """TINY with ``path`` (dotted) set to ``value``; ``...`` deletes the key."""
    config = copy.deepcopy(TINY)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return yaml.safe_dump(config, sort_keys=False)


# (case, config text, what the message must say)
MALFORMED = [
    ("unknown top-level key", with_change("sweeps", {"grid": [4]}), ["sweeps", "allowed keys"]),
    ("unknown axis", with_change("sweep.colour", ["red"]), ["sweep", "colour", "allowed keys"]),
    (
        "wrong type",
        with_change("sweep.grid", ["big"]),
        ["sweep.grid[0]", "'big' is not of type 'integer'"],
    ),
    ("empty axis", with_change("sweep.storage", []), ["sweep.storage", "should be non-empty"]),
    (
        "unknown backend",
        with_change("sweep.backend", ["pymdp-torch"]),
        ["sweep.backend[0]", "'pymdp-torch' is not one of", "lean"],
    ),
    (
        "unknown storage",
        with_change("sweep.storage", ["csx"]),
        ["sweep.storage[0]", "'csx' is not one of", "csr"],
    ),
    (
        "unknown dtype",
        with_change("sweep.dtype", ["float8"]),
        ["sweep.dtype[0]", "'float8' is not one of", "float32"],
    ),
    (
        "zero grid",
        with_change("sweep.grid", [0]),
        ["sweep.grid[0]", "0 is less than the minimum of 2"],
    ),
    (
        "negative agents",
        with_change("sweep.agents", [-3]),
        ["sweep.agents[0]", "-3 is less than the minimum of 1"],
    ),
    (
        "duplicate values",
        with_change("sweep.dtype", ["float64", "float64"]),
        ["sweep.dtype", "non-unique"],
    ),
    (
        "missing axis",
        with_change("sweep.sharing", ...),
        ["sweep", "'sharing' is a required property"],
    ),
    (
        "model setting of the wrong type",
        with_change("model.steps", "many"),
        ["model.steps", "'many' is not of type 'integer'"],
    ),
    (
        "budget below every job",
        with_change("budget.max_job_mb", 1),
        ["budget.max_job_mb", "below every runnable job"],
    ),
    ("YAML syntax error", "sweep: {backend: [lean\nmodel: [", ["not valid YAML"]),
]


# What Snakemake says where it, not memsweep, reads the config first.
SNAKEMAKE_SAYS = {"YAML syntax error": ["Config file is not valid JSON or YAML"]}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("bad-input"))


def run(workdir: Path, *args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(workdir / "src")}
    return subprocess.run(
        args, cwd=cwd or workdir, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(("case", "text", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_memsweep_plan_names_the_key(workdir, case, text, expected):
    config = workdir / f"{case.replace(' ', '-')}.yaml"
    config.write_text(text)
    result = run(workdir, str(Path(SNAKEMAKE).with_name("memsweep")), "plan", str(config))
    assert result.returncode == 2, result.stdout
    for fragment in expected:
        assert fragment in result.stderr, f"{case}: {fragment!r} not in {result.stderr!r}"


@pytest.mark.parametrize(("case", "text", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_snakemake_refuses_and_starts_nothing(workdir, case, text, expected):
    # The config a user edits, which Snakemake reads when no --configfile is given.
    (workdir / "config" / "config.yaml").write_text(text)
    result = run(workdir, SNAKEMAKE, "--cores", "1")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    # The workflow checks its config with memsweep's own check: the same words, naming the
    # key. Only a file that is not YAML stops Snakemake before that, in Snakemake's words.
    says = SNAKEMAKE_SAYS.get(case, expected)
    for fragment in says:
        assert fragment in output, f"{case}: {fragment!r} not in {output[-3000:]!r}"
    assert not (workdir / "results").exists(), f"{case}: a job ran"


def test_wildcards_cannot_form_a_path_outside_the_plan(workdir):
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(TINY))
    target = (
        "results/measurements/backend=lean/storage=dense/dtype=float64/grid=../../../x/"
        "agents=2/sharing=shared/policy_len=1.parquet"
    )
    result = run(workdir, SNAKEMAKE, "--cores", "1", "--dry-run", target)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "MissingRuleException" in output or "No rule to produce" in output, output[-3000:]
    assert "grid=../../../x" in output  # the path it refused is named
    assert not (workdir / "x").exists() and not (workdir.parent / "x").exists()
