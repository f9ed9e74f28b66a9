"""The ``pymdp_version`` setting: a sweep over PyMDP releases.

The pinned release (pyproject.toml's) is the default, and a sweep that does not name it
plans, names and runs its jobs exactly as before. Another release runs in an environment
of its own (:mod:`memsweep.harness.envs`), built from the registry: the slow test builds
0.0.7.1's once (cached under ``$MEMSWEEP_ENVS`` or ``~/.cache/memsweep/envs``) and
measures with it; the workflow test shows that adding a release runs only its jobs.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import shutil
import tomllib
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from memsweep.agents.base import PYMDP_PINNED, PYMDP_RELEASES
from memsweep.harness import envs
from memsweep.plan import config as config_module
from memsweep.plan import sweep
from memsweep.plan.config import ConfigError
from memsweep.plan.jobs import Job, reference_job, unsupported_reason
from memsweep.results.schema import MEASUREMENT_SCHEMA
from memsweep.workflow import Pipeline

from .conftest import ROOT
from .test_workflow import TINY, measure_outputs, planned, snakemake, write_config

OLD = "0.0.7.1"
SMALL = dict(
    backend="pymdp-numpy", storage="dense", dtype="float64", grid=3, agents=1,
    sharing="shared", policy_len=1, steps=3, repeats=1,
)  # fmt: skip


def releases(config: dict, values: list[str]) -> dict:
    """``config`` with ``pymdp_version`` made an axis of ``values``."""
    config = copy.deepcopy(config)
    config.get("model", {}).pop("pymdp_version", None)
    config["sweep"]["pymdp_version"] = values
    return config


def backends_config(*backends: str) -> dict:
    config = copy.deepcopy(TINY)
    config["sweep"].update(backend=list(backends), storage=["dense"])
    return config


# The setting ----------------------------------------------------------------------------
def test_the_default_release_is_the_pinned_and_installed_one():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"inferactively-pymdp=={PYMDP_PINNED}" in pyproject["project"]["dependencies"]
    assert importlib.metadata.version("inferactively-pymdp") == PYMDP_PINNED
    assert Job(**SMALL).pymdp_version == PYMDP_PINNED
    assert PYMDP_RELEASES[-1] == PYMDP_PINNED


def test_the_pinned_release_keeps_the_ids_of_jobs_measured_before_it_existed():
    # A job as those measured before the later settings: glibc's own allocator.
    job = Job(**SMALL, malloc_arena_max=0, malloc_mmap_threshold=0)
    # The settings added later (the release, the world, the allocator), at the values the
    # jobs had before them, are left out.
    later = ("pymdp_version", "world", "malloc_arena_max", "malloc_mmap_threshold")
    before = {k: v for k, v in asdict(job).items() if k not in later}
    blob = json.dumps(before, sort_keys=True).encode()
    assert job.config_id == hashlib.sha1(blob).hexdigest()[:12]
    assert replace(job, pymdp_version=OLD).config_id != job.config_id
    assert replace(job, world="cue-chaining").config_id != job.config_id


def test_the_release_is_no_configuration_column_but_the_provenance_one():
    names = MEASUREMENT_SCHEMA.names
    assert names.count("pymdp_version") == 1 and len(set(names)) == len(names)
    assert reference_job(replace(Job(**SMALL), pymdp_version=OLD)).pymdp_version == PYMDP_PINNED


def test_the_schema_takes_the_releases_and_refuses_others():
    rules = config_module.schema()["properties"]["model"]["properties"]["pymdp_version"]
    assert rules["enum"] == list(PYMDP_RELEASES) and rules["default"] == PYMDP_PINNED
    with pytest.raises(ConfigError, match=r"sweep\.pymdp_version\[0\]: '0\.0\.6' is not one of"):
        config_module.check(releases(TINY, ["0.0.6"]))
    with pytest.raises(ConfigError, match=r"model\.pymdp_version"):
        config_module.check(changed_model(TINY, pymdp_version="2.0"))


def changed_model(config: dict, **settings) -> dict:
    config = copy.deepcopy(config)
    config["model"].update(settings)
    return config


# The plan -------------------------------------------------------------------------------
def test_each_backend_runs_the_releases_it_can_and_says_why_not_the_others():
    config = releases(backends_config("pymdp-numpy", "pymdp-jax", "lean"), [OLD, PYMDP_PINNED])
    plan = {(p.job.backend, p.job.pymdp_version): p for p in sweep.plan(config)}
    assert {key for key, p in plan.items() if p.status == sweep.RUN} == {
        ("pymdp-numpy", OLD),
        ("pymdp-numpy", PYMDP_PINNED),
        ("pymdp-jax", PYMDP_PINNED),
        ("lean", PYMDP_PINNED),
    }
    assert plan["pymdp-jax", OLD].reason == f"PyMDP {OLD} has no JAX agent (it came with 1.0.0)"
    assert plan["lean", OLD].reason.startswith("lean does not use PyMDP")
    numpy = plan["pymdp-numpy", OLD]
    assert f"/sharing=shared/pymdp_version={OLD}/policy_len=1.parquet" in numpy.path
    # Every release is scored against the pinned release's trace: one reference.
    assert numpy.row()["reference"] == "results/reference/grid=4/policy_len=1.npz"
    for release in PYMDP_RELEASES[1:]:
        for backend in ("pymdp-numpy", "pymdp-jax"):  # every 1.0.x: both agents
            assert (
                unsupported_reason(replace(numpy.job, backend=backend, pymdp_version=release))
                is None
            )
    assert "unknown PyMDP release" in unsupported_reason(replace(numpy.job, pymdp_version="9"))


def test_a_sweep_that_names_no_release_plans_as_before():
    config = config_module.load(ROOT / "config" / "config.yaml")
    pipeline = Pipeline(copy.deepcopy(config))
    assert all(p.job.pymdp_version == PYMDP_PINNED for p in pipeline.planned)
    assert not any("pymdp_version" in path for path in pipeline.measurement_files())
    assert "pymdp_version" not in pipeline.model_settings()  # the same measure command
    assert pipeline.env_input() == [] and pipeline.pymdp_releases() == []


def test_the_jobs_of_a_release_take_its_environment():
    pipeline = Pipeline(releases(backends_config("pymdp-numpy", "lean"), [OLD, PYMDP_PINNED]))
    assert pipeline.pymdp_releases() == [OLD]
    env = pipeline.env_input()
    wildcards = type("W", (), {})
    wildcards.pymdp_version = OLD
    assert env(wildcards) == [f"results/envs/pymdp-{OLD}.json"]
    wildcards.pymdp_version = PYMDP_PINNED
    assert env(wildcards) == []
    # A release set for every job: every job takes its environment, and the command says it.
    fixed = Pipeline(changed_model(backends_config("pymdp-numpy"), pymdp_version=OLD))
    assert fixed.env_input() == [f"results/envs/pymdp-{OLD}.json"]
    assert f"--set pymdp_version={OLD}" in fixed.model_settings()


def test_an_environment_installs_the_release_at_memsweeps_pins():
    pins = envs.pins()
    wanted = envs.requirements(OLD)
    assert wanted[0] == f"inferactively-pymdp=={OLD}"
    assert f"numpy=={pins['numpy']}" in wanted and f"pyarrow=={pins['pyarrow']}" in wanted
    constraints = envs.constraints()
    assert f"jax=={pins['jax']}" in constraints and f"jaxlib=={pins['jaxlib']}" in constraints
    assert not any(c.startswith("inferactively-pymdp") for c in constraints)
    assert envs.ensure(PYMDP_PINNED) == envs.interpreter(PYMDP_PINNED)


# A real environment ---------------------------------------------------------------------
UNREACHABLE = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
)


# The release the real environment is built for: 1.0.0 installs in about a minute and a
# half; 0.0.7.1 takes 4-6 minutes (its requirements pull Sphinx and Jupyter), beyond the
# 3 minutes this test may take on a clean machine. 0.0.7.1's own API is covered by the
# backend's import choice (pymdp.agent vs pymdp.legacy), run by hand in the note.
BUILT = "1.0.0"


@pytest.fixture(scope="session")
def old_release() -> Path:
    """PyMDP 1.0.0's environment, built from the registry once (cached across sessions
    under envs.root(): a minute or two the first time, a check after)."""
    try:
        return envs.ensure(BUILT)
    except RuntimeError as error:
        if any(text in str(error) for text in UNREACHABLE):
            pytest.skip(f"the package registry is unreachable, no PyMDP {BUILT}: {error}")
        raise


def test_a_job_on_an_old_release_runs_in_its_environment(old_release, tmp_path):
    from memsweep.harness import supervisor
    from memsweep.results.schema import read_frame

    job = Job(**SMALL, pymdp_version=BUILT)
    out = tmp_path / "measurement.parquet"
    outcome = supervisor.measure(job, out)
    assert outcome.ok, outcome.reason
    frame = read_frame(out)
    assert set(frame["status"]) <= {"ok", "unavailable"}
    assert set(frame["pymdp_version"]) == {BUILT}  # read in the child, from its environment
    assert set(frame["numpy_version"]) == {envs.pins()["numpy"]}
    assert set(frame["config_id"]) == {job.config_id}
    # The same job in memsweep's own interpreter is refused: it holds the pinned release.
    from memsweep.harness.measure import Measurement

    with pytest.raises(ValueError, match=f"holds PyMDP {PYMDP_PINNED}, the job asks for {BUILT}"):
        Measurement(job, None, lambda phase: None)


# Reruns ---------------------------------------------------------------------------------
@pytest.mark.workflow
def test_adding_a_release_runs_only_its_jobs(swept_copy):
    workdir = swept_copy
    one = releases(backends_config("pymdp-numpy"), [PYMDP_PINNED])
    two = releases(backends_config("pymdp-numpy"), [PYMDP_PINNED, OLD])
    write_config(workdir, one)
    try:
        snakemake(workdir, "--until", "measure")  # the pinned release, in its new folder
        write_config(workdir, two)
        jobs = planned(workdir)
        new = measure_outputs(jobs)
        assert new == set(Pipeline(copy.deepcopy(two)).measurement_files()) - set(
            Pipeline(copy.deepcopy(one)).measurement_files()
        )
        assert len(new) == 1 and f"/pymdp_version={OLD}/" in next(iter(new))
        assert jobs["pymdp_env"] == {f"results/envs/pymdp-{OLD}.json"}
        assert "reference" not in jobs  # scored against the pinned release's trace
    finally:
        write_config(workdir, TINY)
        for folder in sorted((workdir / "results").rglob("pymdp_version=*"), reverse=True):
            shutil.rmtree(folder, ignore_errors=True)
