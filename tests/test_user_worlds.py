"""A user's own model as a world, by import path and by ``.npz`` file, through the real
Snakemake: plan -> reference -> measure -> aggregate -> report in one tiny sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from memsweep.plan import sweep
from memsweep.plan.config import ConfigError
from memsweep.plan.sweep import folder_value
from memsweep.world import base, registry
from memsweep.world.base import ModelShape, WorldSettings
from memsweep.world.registry import get

from .conftest import ROOT, tiny_config
from .test_workflow import SNAKEMAKE, copy_workflow

pytestmark = pytest.mark.workflow

# A 2-factor, 2-modality model: a position on a ring of `grid` cells that the agent moves
# (stay or step right), and a hidden context it cannot change; A[0] sees the position,
# A[1] a noisy hint of the context at cell 0 only.
MODULE = textwrap.dedent(
    """
    import numpy as np


    def build(grid, seed):
        n = grid
        stay = np.eye(n)
        right = np.roll(np.eye(n), 1, axis=0)
        hint = np.full((3, n, 2), 0.0)
        hint[0] = 1.0  # nothing to see away from cell 0
        hint[:, 0, :] = [[0.0, 0.0], [0.9, 0.1], [0.1, 0.9]]
        return dict(
            A=[np.eye(n), hint],
            B=[np.stack([stay, right], axis=-1), np.eye(2)[:, :, None]],
            C=[np.zeros(n), np.array([0.0, 1.0, 0.0])],
            D=[np.full(n, 1.0 / n), np.array([0.5, 0.5])],
            A_dependencies=[[0], [0, 1]],
            B_dependencies=[[0], [1]],
        )
    """
)
MODULE_NAME = "memsweep_test_user_world"
FUNCTION = f"{MODULE_NAME}:build"


def write_npz(path: Path) -> None:
    """A 1-factor, 1-modality model of 3 states, 2 actions, with a noisy A."""
    a = np.full((3, 3), 0.05) + 0.85 * np.eye(3)
    b = np.stack([np.eye(3), np.roll(np.eye(3), 1, axis=0)], axis=-1)
    np.savez(
        path,
        A_0=a,
        B_0=b,
        C_0=np.array([0.0, 0.0, 2.0]),
        D_0=np.full(3, 1 / 3),
        A_dependencies=np.array(json.dumps([[0]])),
        B_dependencies=np.array(json.dumps([[0]])),
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    modules = tmp_path_factory.mktemp("user-modules")
    (modules / f"{MODULE_NAME}.py").write_text(MODULE)
    workdir = copy_workflow(tmp_path_factory.mktemp("user-worlds"))
    (workdir / "models").mkdir()
    write_npz(workdir / "models" / "ring.npz")
    worlds = [FUNCTION, "models/ring.npz"]  # relative to the folder Snakemake runs in
    config = {
        "sweep": {
            "backend": ["pymdp-numpy"],
            "storage": ["dense"],
            "dtype": ["float64"],
            "grid": [3],
            "agents": [1],
            "sharing": ["shared"],
            "policy_len": [1],
            "world": worlds,
        },
        "model": {"steps": 3, "repeats": 1, "seed": 0},
        "budget": {"max_job_mb": 4000},
    }
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(workdir / "src"), str(modules)])}
    result = subprocess.run(
        [SNAKEMAKE, "--cores", "2"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return workdir, worlds, modules


def test_the_user_models_are_what_they_say(swept, monkeypatch):
    workdir, worlds, modules = swept
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.chdir(workdir)
    function, npz = worlds
    shape = ModelShape.of(get(function).model(WorldSettings(world=function, grid=3)))
    assert shape.A == ((3, 3), (3, 3, 2)) and shape.B == ((3, 3, 2), (2, 2, 1))
    shape = ModelShape.of(get(npz).model(WorldSettings(world=npz, grid=3)))
    assert shape.A == ((3, 3),) and shape.B == ((3, 3, 2),)


def test_each_world_has_its_measurement_file(swept):
    workdir, worlds, _ = swept
    files = sorted((workdir / "results/measurements").rglob("*.parquet"))
    assert len(files) == len(worlds)
    for world in worlds:
        folder = f"world={folder_value(world)}"
        assert "/" not in folder_value(world)
        assert [f for f in files if folder in f.parts], (folder, files)
    plan = pd.read_parquet(workdir / "results/sweep/plan.parquet")
    assert set(plan.world) == set(worlds) and (plan.status == "run").all()


def test_measurements_hold_the_world_strings_exactly(swept):
    workdir, worlds, _ = swept
    measurements = pd.read_parquet(workdir / "results/measurements.parquet")
    assert set(measurements.world.astype(str)) == set(worlds)
    # A probe a tiny job cannot read (growth over 3 steps) is "unavailable"; none failed.
    assert set(measurements.status) <= {"ok", "unavailable"}
    # The two-factor world's arrays each have their own model row.
    function = measurements[measurements.world.astype(str) == worlds[0]]
    model = function[(function.phase == "model") & (function.metric == "bytes")]
    assert {"A[0]", "A[1]", "B[0]", "B[1]"} <= set(model.operation)
    precision = function[function.phase == "precision"].set_index("metric").value
    assert precision["max_abs_qs_error"] == 0


def test_the_report_mentions_each_world(swept):
    workdir, worlds, _ = swept
    report = (workdir / "results/report/hotspots.md").read_text()
    for world in worlds:
        assert world in report, world


# -- config/README.md's example, and the errors it quotes ----------------------------------

README = (ROOT / "config" / "README.md").read_text().split("\n## Your own model (`world`)\n")[1]


def block(language: str, index: int = 0) -> str:
    return README.split(f"```{language}\n")[index + 1].split("```", 1)[0]


def fresh(name: str) -> None:
    """Forget an imported module and every world and shape cached from it, so that a
    module of the same name written again is imported again."""
    sys.modules.pop(name, None)
    registry.get.cache_clear()
    base._built_shape.cache_clear()


def plan_error(world: str) -> str:
    config = tiny_config()
    config["sweep"].update(backend=["pymdp-numpy"], storage=["dense"], grid=[3], world=[world])
    with pytest.raises(ConfigError) as error:
        sweep.plan(config)
    return str(error.value)


def test_the_readme_example_plans(tmp_path, monkeypatch):
    (tmp_path / "ring.py").write_text(block("python"))
    monkeypatch.syspath_prepend(str(tmp_path))
    fresh("ring")
    config = yaml.safe_load(block("yaml"))
    assert config["sweep"]["world"] == ["grid", "ring:build"]
    planned = sweep.plan(config)
    ring = [p for p in planned if p.job.world == "ring:build"]
    assert {p.job.grid for p in ring if p.status == "run"} == {5, 10, 20}
    lean = [p for p in ring if p.job.backend == "lean"]
    assert lean and all("2 factors and 2 modalities" in p.reason for p in lean)
    fresh("ring")


MUTATIONS = {
    "B[0]": 'model["B"][0] = model["B"][0] * 0.5',
    "C:": 'model["C"] = model["C"][:1]',
    "A_dependencies[1]": 'model["A_dependencies"] = [[0], [0, 5]]',
}


def test_the_readme_errors_are_the_plans(tmp_path, monkeypatch):
    """Each error config/README.md quotes is what the plan says of its example, broken."""
    quoted = [line for line in block("text").splitlines() if line]
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    seen = []
    for array, mutation in MUTATIONS.items():
        wrapper = "\n_build = build\n\n\ndef build(grid, seed):\n    model = _build(grid, seed)\n"
        wrapper += f"    {mutation}\n    return model\n"
        (tmp_path / "ring.py").write_text(block("python") + wrapper)
        fresh("ring")
        seen.append(plan_error("ring:build"))
        assert array in seen[-1]
    fresh("ring")
    (tmp_path / "models").mkdir()
    write_npz(tmp_path / "models" / "ring.npz")
    with np.load(tmp_path / "models" / "ring.npz") as data:
        arrays = dict(data)
    arrays["A_0"] = np.eye(3)
    arrays["A_1"] = np.full((3, 3, 3), 1 / 3)  # the context has 2 states, not 3
    arrays["A_dependencies"] = np.array(json.dumps([[0], [0, 1]]))
    arrays["B_1"] = np.eye(2)[:, :, None]
    arrays["C_1"] = np.zeros(3)
    arrays["D_1"] = np.array([0.5, 0.5])
    arrays["B_dependencies"] = np.array(json.dumps([[0], [1]]))
    np.savez(tmp_path / "models" / "ring.npz", **arrays)
    seen.append(plan_error("models/ring.npz"))
    assert sorted(quoted) == sorted(seen), seen
