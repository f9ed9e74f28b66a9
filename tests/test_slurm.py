"""The SLURM profile on a real one-node SLURM cluster (scripts/slurm-cluster.sh).

The shared tiny sweep (.test/config/config.yaml) runs twice in temporary copies of the
workflow, as in test_workflow.py: once with ``snakemake --profile profiles/slurm`` and once
locally. The SLURM run must have sent every measure job through SLURM (its job ids,
confirmed by sacct), and both runs must produce the same measurement rows. Needs root
(the daemons), the Debian packages (installed by the script when missing) and the SLURM
executor plugin, which is not in the project's environment (``make test`` installs it
into ``.venv/slurm-plugin``; only this test's ``snakemake --profile profiles/slurm`` runs
put it on PYTHONPATH). Without them the tests skip, saying why; in CI (``CI=true``) they
fail. ``pytest -m slurm -s`` prints the SLURM jobs and the memory each asked for and used.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import ROOT, require
from .test_workflow import SNAKEMAKE, TINY, copy_workflow, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]

SCRIPT = ROOT / "scripts" / "slurm-cluster.sh"
SBIN = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])
# The shared tiny sweep: three measure jobs (one SLURM job: the profile groups up to 4),
# one reference job and calibrate: three SLURM jobs. plan, aggregate and report are local.
CONFIG = TINY
MEASURE_JOBS = 3
# Where `make test` installs the SLURM executor plugin (and its job-step plugin), outside
# the environment: Snakemake imports every plugin it finds at each start, and this one then
# asks `scontrol` for the cluster's configuration (about 10 s where no controller answers).
# Snakemake finds plugins by module name on sys.path, so PYTHONPATH is enough.
SLURM_PLUGIN = Path(sys.prefix) / "slurm-plugin"
PLUGIN_MODULES = ("snakemake_executor_plugin_slurm", "snakemake_executor_plugin_slurm_jobstep")
ROW_KEY = ["config_id", "phase", "operation", "metric", "probe"]
# The profile polls sacct every 20 s or more (kind to a real cluster's slurmdbd); here
# every few seconds, or polling would dominate the run.
FAST_POLLING = [
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
]
RUN_SECONDS = 360  # per snakemake run; a hung snakemake ignores SIGTERM, hence timeout -k
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")
MEASUREMENT = re.compile(r"output: (results/measurements/\S+?\.parquet)")


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + SBIN)


def _slurm_env(workdir: Path) -> dict[str, str]:
    """The environment of this test's snakemake runs: the copy's src/ and the SLURM plugin
    on PYTHONPATH (the plugin's sbatch --export=ALL passes it on to the SLURM jobs)."""
    path = [str(workdir / "src"), str(SLURM_PLUGIN)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def _plugin_found() -> bool:
    """Whether the snakemake runs of this test can import the SLURM executor plugins."""
    check = [sys.executable, "-c", "import " + ", ".join(PLUGIN_MODULES)]
    return subprocess.run(check, env=_slurm_env(ROOT), capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster():
    """A one-node cluster; stops, at the end, only the daemons that this start started."""
    require(os.geteuid() == 0, "the SLURM test starts SLURM's daemons: needs root")
    require(_which("slurmctld") or _which("apt-get"), "no SLURM binaries, and no apt-get for them")
    require(
        _plugin_found(),
        f"no SLURM executor plugin: `make test` installs it into {SLURM_PLUGIN} "
        "(or `pip install -e '.[slurm]'`)",
    )
    result = subprocess.run(
        ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900
    )
    if result.returncode == 2:  # the script's "cannot run here"
        require(False, f"no SLURM cluster here: {result.stderr.strip().splitlines()[-1]}")
    if result.returncode != 0:
        pytest.fail(f"scripts/slurm-cluster.sh start failed:\n{result.stdout}\n{result.stderr}")
    started = result.stdout.rpartition("started:")[2].split()
    yield started
    if started:
        subprocess.run(["bash", str(SCRIPT), "stop", *started], check=True, timeout=300)


def _run(workdir: Path, *args: str) -> subprocess.Popen:
    """Start snakemake in ``workdir``, its output to snakemake.out there."""
    with open(workdir / "snakemake.out", "w") as log:
        return subprocess.Popen(
            ["timeout", "-k", "30", str(RUN_SECONDS), SNAKEMAKE, *args],
            cwd=workdir,
            env=_slurm_env(workdir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait(process: subprocess.Popen, workdir: Path, what: str) -> str:
    process.wait()
    text = (workdir / "snakemake.out").read_text()
    if process.returncode in (124, 137):
        subprocess.run([SNAKEMAKE, "--unlock"], cwd=workdir, capture_output=True, check=False)
    assert process.returncode == 0, f"{what} run failed ({process.returncode}):\n{text[-8000:]}"
    return text


@pytest.fixture(scope="module")
def runs(slurm_cluster, tmp_path_factory):
    """The SLURM run and the local run of CONFIG, side by side (the SLURM run mostly waits)."""
    workdirs = {}
    for name in ("slurm", "local"):
        workdirs[name] = copy_workflow(tmp_path_factory.mktemp(name))
        write_config(workdirs[name], CONFIG)
    started = time.monotonic()
    cluster = _run(workdirs["slurm"], "--profile", "profiles/slurm", *FAST_POLLING)
    local = _run(workdirs["local"], "--cores", "1")
    logs = {"slurm": _wait(cluster, workdirs["slurm"], "SLURM")}
    print(f"\nSLURM run: {time.monotonic() - started:.0f} s")
    logs["local"] = _wait(local, workdirs["local"], "local")
    print(f"both runs: {time.monotonic() - started:.0f} s")
    return workdirs, logs


def _sacct(job_ids) -> pd.DataFrame:
    fields = "JobID,JobName,State,ExitCode,ReqMem,ReqCPUS,MaxRSS,Elapsed,NodeList"
    text = subprocess.run(
        ["sacct", "--parsable2", "--noheader", f"--format={fields}", "--jobs", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|") for line in text.splitlines() if line]
    return pd.DataFrame(rows, columns=fields.split(","))


def _mb(text: str) -> float:
    """sacct's 2000M / 178492K / 1.5G -> MB (MiB, as SLURM counts)."""
    match = re.fullmatch(r"([\d.]+)([KMGT]?)", text.strip())
    if not match:
        return float("nan")
    scale = {"": 1 / 2**20, "K": 1 / 1024, "M": 1, "G": 1024, "T": 2**20}[match.group(2)]
    return float(match.group(1)) * scale


def _requested_mem_mb(log: str) -> dict[str, int]:
    """measurement file -> the mem_mb Snakemake gave its measure job (from the run's log)."""
    requested = {}
    for block in re.split(r"\n\s*(?=(?:local)?rule \w+:)", log):
        output = MEASUREMENT.search(block)
        mem = re.search(r"resources: .*?\bmem_mb=(\d+)", block)
        if block.lstrip().startswith("rule measure:") and output and mem:
            requested[output.group(1)] = int(mem.group(1))
    return requested


@pytest.fixture(scope="module")
def slurm_jobs(runs):
    """What the SLURM run submitted: run id, SLURM job id per measurement, sacct rows."""
    workdirs, logs = runs
    run_id = re.search(r"SLURM run ID: (\S+)", logs["slurm"])
    submitted = SUBMITTED.findall(logs["slurm"])
    assert run_id and submitted, "no job was submitted to SLURM:\n" + logs["slurm"][-4000:]
    sacct = _sacct(job_id for _, job_id, _ in submitted)
    completed = set(sacct[sacct.State == "COMPLETED"].JobID)
    made_by = {}  # measurement file -> the SLURM job that made it, from that job's own log
    for _, job_id, slurm_log in submitted:
        for output in MEASUREMENT.findall(Path(slurm_log).read_text()):
            if job_id in completed:  # not an attempt that SLURM killed (then retried)
                assert made_by.setdefault(output, job_id) == job_id, output
    return run_id.group(1), submitted, made_by, sacct


def test_every_measure_job_ran_in_a_slurm_job(runs, slurm_jobs):
    workdirs, logs = runs
    run_id, submitted, made_by, sacct = slurm_jobs
    made = {
        str(path.relative_to(workdirs["slurm"]))
        for path in (workdirs["slurm"] / "results/measurements").rglob("*.parquet")
    }
    assert len(made) == MEASURE_JOBS
    # Each measurement file was written in a SLURM job: that job's log (sbatch --output,
    # named by its job id) shows Snakemake making the file.
    assert set(made_by) == made
    jobs = sacct[~sacct.JobID.str.contains(r"\.")].set_index("JobID")
    steps = sacct[sacct.JobID.str.contains(r"\.\d+$")]
    print(f"\nSLURM run {run_id}: jobs {', '.join(job for _, job, _ in submitted)}")
    print(sacct.to_string(index=False))
    # ... and SLURM's accounting knows every job, by this run's name.
    for _, job_id, _ in submitted:
        assert jobs.loc[job_id, "JobName"] == run_id
    for job_id in set(made_by.values()):
        assert jobs.loc[job_id, "ExitCode"] == "0:0"
    for job_id in set(made_by.values()):
        # One srun step per measure job of the group.
        members = sum(1 for value in made_by.values() if value == job_id)
        assert (steps.JobID.str.split(".").str[0] == job_id).sum() >= members
    # The records name the host SLURM ran the jobs on.
    measurements = pd.read_parquet(workdirs["slurm"] / "results/measurements.parquet")
    nodes = {jobs.loc[job_id, "NodeList"] for job_id in set(made_by.values())}
    assert set(measurements.hostname) == nodes


def _outcomes(frame: pd.DataFrame) -> set[tuple]:
    """Each row's key and outcome. A reading below its probe's resolution (a per-agent
    share under one page) is a measured outcome like an ok one: which side of one page
    a few KB land on is the measurement's noise, not a difference between the runs."""
    below = (frame.status == "unavailable") & frame.reason.fillna("").str.contains("under one page")
    outcome = frame.status.where(~below & (frame.status != "ok"), "measured")
    return set(map(tuple, frame[ROW_KEY].astype(str).assign(outcome=outcome).values))


def test_same_measurement_rows_as_a_local_run(runs):
    workdirs, _ = runs
    frames = {
        name: pd.read_parquet(workdir / "results/measurements.parquet")
        for name, workdir in workdirs.items()
    }
    keys = {name: _outcomes(frame) for name, frame in frames.items()}
    assert keys["slurm"] == keys["local"]
    assert len(keys["slurm"]) > 100
    assert not (frames["slurm"].status == "failed").any()


def test_requested_memory_beside_measured_peak(runs, slurm_jobs):
    """Printed for the record; asserts only that each job asked for its planned memory."""
    workdirs, logs = runs
    _, _, made_by, sacct = slurm_jobs
    requested = _requested_mem_mb(logs["slurm"])
    plan = pd.read_parquet(workdirs["slurm"] / "results/sweep/plan.parquet")
    measurements = pd.read_parquet(workdirs["slurm"] / "results/measurements.parquet")
    peak = measurements[
        (measurements.phase == "summary")
        & (measurements.metric == "peak_bytes")
        & (measurements.probe == "vmhwm")
    ].set_index("config_id")["value"]
    sacct = sacct.assign(req_mb=sacct.ReqMem.map(_mb), maxrss_mb=sacct.MaxRSS.map(_mb))
    job_of = sacct.JobID.str.split(".").str[0]
    rows = []
    for output, job_id in sorted(made_by.items()):
        planned = plan[plan.path == output].iloc[0]
        rows.append(
            {
                "slurm_job": job_id,
                "config": f"{planned.backend}/{planned.storage}/grid={planned.grid}",
                "predicted_mb": round(float(planned.predicted_mb), 1),
                "mem_mb": requested[output],
                "slurm_req_mb": sacct[sacct.JobID == job_id].req_mb.iloc[0],
                "slurm_step_maxrss_mb": round(sacct[job_of == job_id].maxrss_mb.max(), 1),
                "peak_vmhwm_mb": round(peak[planned.config_id] / 1e6, 2),
            }
        )
        assert requested[output] >= planned.predicted_mb
    table = pd.DataFrame(rows)
    retries = re.findall(r"Trying to restart job \d+", logs["slurm"])
    print(f"\nretried jobs (OUT_OF_MEMORY, TIMEOUT or other failures): {len(retries)}")
    print("\nmemory per measure job: requested (mem_mb, SLURM ReqMem of its job) vs measured")
    print(table.to_string(index=False))
    other = sacct[~sacct.JobID.isin(set(made_by.values())) & ~sacct.JobID.str.contains(r"\.")]
    for job_id in other.JobID:
        print(
            f"SLURM job {job_id}: ReqMem {sacct[sacct.JobID == job_id].ReqMem.iloc[0]}, "
            f"largest step MaxRSS {sacct[job_of == job_id].maxrss_mb.max():.0f} MB"
        )


HOG = """
rule hog:
    output: "done.txt"
    resources:
        mem_mb=lambda wildcards, attempt: 300 * attempt,
        runtime=5,
    shell: "{python} -c '{program}' && echo {{resources.mem_mb}} > {{output}}"
"""
# Touches 300 MiB and holds it past a few of SLURM's 1 s memory samples.
HOG_PROGRAM = "import time; x = bytearray(300 * 2**20); x[::4096] = bytes(len(x[::4096])); " + (
    "time.sleep(5)"
)


def test_job_killed_for_memory_is_retried_with_more(slurm_cluster, tmp_path):
    """The profile's retries: a job past its memory is killed, then asks for twice as much."""
    shutil.copytree(ROOT / "profiles" / "slurm", tmp_path / "profiles" / "slurm")
    (tmp_path / "Snakefile").write_text(
        HOG.format(python=sys.executable, program=HOG_PROGRAM.replace('"', '\\"'))
    )
    process = _run(tmp_path, "--profile", "profiles/slurm", *FAST_POLLING)
    log = _wait(process, tmp_path, "memory-hog")
    jobs = [job_id for _, job_id, _ in SUBMITTED.findall(log)]
    sacct = _sacct(jobs).set_index("JobID")
    print(f"\nmemory hog: SLURM jobs {jobs}")
    print(sacct[["State", "ReqMem", "MaxRSS"]].to_string())
    assert len(jobs) == 2 and "Trying to restart job" in log
    assert sacct.loc[jobs[0], "State"] in {"OUT_OF_MEMORY", "FAILED"}
    assert (
        "exceeded memory limit"
        in next((tmp_path / ".snakemake/slurm_logs").rglob(f"{jobs[0]}.log")).read_text()
    )
    assert sacct.loc[jobs[1], "State"] == "COMPLETED"
    assert [_mb(sacct.loc[job, "ReqMem"]) for job in jobs] == [300, 600]
    assert (tmp_path / "done.txt").read_text().strip() == "600"
