"""What every backend declares, checked for all of them: cheap to ask, and consistent with
what the rest of memsweep records (provenance columns, probes, layouts)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from memsweep import agents
from memsweep.agents.base import OBJECTS, AgentSpec, Backend
from memsweep.harness import probes
from memsweep.results.schema import PROVENANCE_FIELDS

NAMES = agents.names()
PROBES = {
    kind.name
    for kind in vars(probes).values()
    if isinstance(kind, type) and issubclass(kind, probes.Probe) and hasattr(kind, "name")
}


def test_the_three_backends_are_found():
    assert {"pymdp-numpy", "pymdp-jax", "lean"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_declarations(name):
    backend = agents.get(name)
    assert isinstance(backend, Backend) and backend.name == name
    assert backend.import_mb > 0
    assert set(backend.blind_probes) <= PROBES
    # Every declared storage and dtype is one memsweep knows; the rest have reasons.
    for table in (backend.storages, backend.dtypes):
        assert all(reason is None or reason.strip() for reason in table.values())
    assert agents.module_path(name).is_file()


@pytest.mark.parametrize("name", NAMES)
def test_versions_are_keyed_by_provenance_columns(name):
    versions = agents.get(name).versions()
    assert set(versions) <= {f.name for f in PROVENANCE_FIELDS}
    for column, distribution in agents.get(name).libraries.items():
        assert versions[column] == version(distribution)


def test_base_versions_are_empty():
    class Bare(Backend):
        name = "bare"
        storages = {"dense": None}
        dtypes = {"float64": None}

        def load(self):
            pass

        def build_agents(self, model, spec):
            raise NotImplementedError

    assert Bare().versions() == {}
    assert Bare.layout(AgentSpec("dense", "float64", 1, "shared", 1)) == OBJECTS


def test_layouts():
    from memsweep.agents.pymdp_jax import PRIVATE_LAYOUT, SHARED_LAYOUT

    jax = agents.get("pymdp-jax")
    for sharing, expected in (("shared", SHARED_LAYOUT), ("private", PRIVATE_LAYOUT)):
        assert jax.layout(AgentSpec("dense", "float32", 2, sharing, 1)) == expected
        assert agents.get("lean").layout(AgentSpec("dense", "float32", 2, sharing, 1)) == OBJECTS


def test_asking_the_declarations_imports_no_library():
    code = (
        "import sys\n"
        "from memsweep import agents\n"
        "from memsweep.plan import predict\n"
        "from memsweep.plan.jobs import Job, unsupported_reason\n"
        "from memsweep.agents.base import AgentSpec\n"
        "spec = AgentSpec('dense', 'float32', 2, 'private', 1)\n"
        "for name in agents.names():\n"
        "    backend = agents.get(name)\n"
        "    backend.versions(), backend.layout(spec), backend.unsupported_reason(spec)\n"
        "    job = Job(name, 'csr', 'float16', 4, 2, 'shared', 2)\n"
        "    predict.predict_mb(job), unsupported_reason(job)\n"
        "heavy = {'jax', 'pymdp', 'equinox', 'scipy', 'pandas'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
