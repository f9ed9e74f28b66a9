"""Memory caps that hold: a spike between two of the supervisor's polls still fails the job.

The supervisor polls the child every 20 ms; a child can allocate and free hundreds of
MB in between. After the child exits, the supervisor compares its peak with the cap:
the peak the worker reports (its high-water mark over its whole life, resets included)
and the kernel's ``ru_maxrss``. These tests take the polls away (every poll reads 0), so
the check after exit is all that stands between a spike and an ``ok``. Where the
kernel's hard limit is on (tests/test_limits.py), it sits a margin above the cap, so
these spikes (409 MB under a 405 MB cap) still reach the check after exit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from memsweep.harness import limits, supervisor
from memsweep.harness.reference import Reference
from memsweep.plan.jobs import Job
from memsweep.results import schema
from memsweep.world.base import WorldSettings

from .conftest import ROOT

CAP_MB = 405
RUNS = 20
# A stand-in job: 400 MB written (so resident) and freed at once, then exit. With the
# interpreter's own ~9 MB its peak is ~409 MB: above the cap for a few ms.
SPIKE = 'block = b"\\x01" * 400_000_000; del block'
SMALL = 'block = b"\\x01" * 100_000_000; del block'

# A small supervising process, as `memsweep measure` is: it runs the stand-in RUNS times
# under the cap, with polls that see nothing (or the real polls), and prints the outcomes.
SUPERVISE = textwrap.dedent(
    """
    import json, sys
    from memsweep.harness import supervisor

    code, cap, runs, polls, ballast_mb = sys.argv[1:]
    if polls == "off":
        supervisor._poll = lambda process: (0, 0)
    ballast = b"\\x02" * (int(ballast_mb) * 1_000_000)  # this process's own resident memory
    stand_in, log = [sys.executable, "-c", code], sys.argv[0] + ".log"
    outcomes = [
        supervisor.run_child([], float(cap), log=log, program=stand_in) for _ in range(int(runs))
    ]
    print(json.dumps([[o.ok, o.reason, o.peak_rss_bytes] for o in outcomes]))
    """
)


def supervise(tmp_path, code: str, runs: int, polls: str, ballast_mb: int = 0) -> list:
    script = tmp_path / "supervise.py"
    script.write_text(SUPERVISE)
    result = subprocess.run(
        [sys.executable, str(script), code, str(CAP_MB), str(runs), polls, str(ballast_mb)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout)


def test_a_spike_between_two_polls_fails_the_job_every_time(tmp_path):
    # RUNS with the polls blind; a few more with the real polls, as jobs run.
    for polls, runs in (("off", RUNS), ("on", 5)):
        outcomes = supervise(tmp_path, SPIKE, runs, polls)
        assert len(outcomes) == runs
        failed = [o for o in outcomes if not o[0]]
        assert len(failed) == runs, f"polls {polls}: {runs - len(failed)} of {runs} came back ok"
        for _, reason, peak in outcomes:
            assert reason.startswith(f"exceeded memory cap of {CAP_MB} MB at phase "), reason
            assert f"peak resident {round(peak / 1e6)} MB" in reason, reason
            assert CAP_MB * 1e6 < peak < (CAP_MB + 50) * 1e6  # 400 MB + the interpreter
            if polls == "off":  # only the check after exit can have seen it
                assert "after it exited: a spike between two polls" in reason, reason


def test_a_child_under_the_cap_is_ok_under_a_supervisor_above_it(tmp_path):
    # Linux copies the forking process's high-water mark into the child's ru_maxrss: a
    # 600 MB supervisor must not make a 110 MB child look like it passed a 405 MB cap.
    outcomes = supervise(tmp_path, SMALL, 2, "off", ballast_mb=600)
    assert len(outcomes) == 2
    for ok, reason, peak in outcomes:
        assert ok, reason
        assert reason is None
        assert peak < CAP_MB * 1e6


def stand_in_backend(name: str, population: str) -> str:
    """The end of a stand-in backend module: a dense float64 backend called ``name`` that
    builds the ``population`` class the module's source above it defines."""
    return f"""

class StandIn(Backend):
    name = "{name}"
    storages = {{"dense": None}}
    dtypes = {{"float64": None}}
    import_mb = 50.0

    def load(self):
        pass

    def build_agents(self, model, spec):
        return {population}(model, spec)


BACKEND = StandIn()
"""


# A backend that allocates 400 MB for a moment in its second call of the job's world (not
# the 2×2 warm-up's): in the first window of the step phase, whose later windows reset
# the kernel's mark before the phase ends.
SPIKE_BACKEND = """
import numpy as np

from memsweep.agents.base import Backend, Beliefs, Population


class SpikePopulation(Population):
    operations = ("infer_states",)

    def __init__(self, model, spec):
        self.states, self.calls = len(model.D), 0

    def reset(self):
        pass

    def call(self, operation, step):
        self.calls += 1
        if self.states > 4 and self.calls == 2:
            block = np.ones(400_000_000 // 8)  # every page written: resident
            del block

    def beliefs(self):
        return Beliefs(np.full(self.states, 1 / self.states), np.full(5, 0.2), (0,))
""" + stand_in_backend("spike", "SpikePopulation")


def project_with_backend(folder: Path, module: str, source: str) -> Path:
    """A copy of ``src/`` with one more backend module; put it first on PYTHONPATH."""
    src = folder / "src"
    shutil.copytree(
        ROOT / "src" / "memsweep",
        src / "memsweep",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (src / "memsweep" / "agents" / f"{module}.py").write_text(source)
    return src


def stand_in_reference(path: Path, grid: int, steps: int) -> Path:
    """A reference trace of the right world and length (its beliefs are uniform)."""
    states = grid * grid
    Reference(
        observations=np.zeros((steps, 1), int),
        actions=np.zeros((steps, 1), int),
        qs=np.full((steps, states), 1 / states),
        q_pi=np.full((steps, 5), 1 / 5),
        world=WorldSettings(grid=grid),
        policy_len=1,
    ).save(path)
    return path


def test_the_worker_reports_a_spike_that_the_harness_reset_away(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(project_with_backend(tmp_path, "spike", SPIKE_BACKEND)))
    monkeypatch.setattr(supervisor, "_poll", lambda process: (0, 0))
    # Without the kernel's hard limit, which would kill the spike while it runs
    # (tests/test_limits.py): here the worker's own report is all that can see it.
    monkeypatch.setattr(limits, "create", lambda limit_bytes: limits.NoLimit("off in this test"))
    job = Job("spike", "dense", "float64", 3, 1, "shared", 1, steps=5, repeats=1)
    reference = stand_in_reference(tmp_path / "reference.npz", 3, 5)
    out = tmp_path / "m.parquet"
    cap_mb = 300  # above the worker's own ~150 MB, below the spike
    outcome = supervisor.measure_job(job, out, reference, cap_mb, log=tmp_path / "log")
    assert not outcome.ok, (tmp_path / "log").read_text()
    assert outcome.reason.startswith(f"exceeded memory cap of {cap_mb} MB at phase step ")
    assert "reported by the child after it exited" in outcome.reason
    assert outcome.peak_rss_bytes > 400e6
    frame = schema.read_measurements(out).to_pandas()
    assert len(frame) == 1  # the failed record replaced the worker's own file
    row = frame.iloc[0]
    assert (row.status, row.phase, row.operation) == ("failed", "failure", "step")
    assert row.reason == outcome.reason and row.value == outcome.peak_rss_bytes
    assert row.cap_enforcement == (
        "polls every 20 ms, post-exit peak (no hard limit: off in this test)"
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_polled_child_over_the_cap_is_stopped_while_it_runs(tmp_path):
    # The polls still stop a child that stays above the cap (it never exits by itself).
    code = 'import time; block = b"\\x01" * 400_000_000; time.sleep(120)'
    outcomes = supervise(tmp_path, code, 1, "on")
    [(ok, reason, peak)] = outcomes
    assert not ok
    assert reason.startswith(f"exceeded memory cap of {CAP_MB} MB at phase start ")
    assert reason.endswith("when stopped)")
    assert peak > CAP_MB * 1e6
