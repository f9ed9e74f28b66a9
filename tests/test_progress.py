"""What a run shows: a progress line in a terminal, Snakemake's plain log anywhere else.

The display is memsweep's Snakemake logger plugin (src/memsweep/progress.py), which
profiles/default turns on. Unit tests drive its handler with Snakemake's log records and a
fake clock; the workflow tests run the real snakemake on the tiny sweep under a
pseudo-terminal and through a pipe.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from snakemake_interface_logger_plugins.common import LogEvent

from memsweep import progress
from memsweep.progress import LogHandler, Tally, wants_display

from .test_workflow import SNAKEMAKE, TINY, copy_workflow, write_config

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Lines of Snakemake's plain log that the display replaces.
PLAIN_ONLY = ("steps (", "Finished jobid", "Select jobs to execute", "rule plan:", "jobid:")


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a pseudo-terminal would."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def settings(**overrides) -> SimpleNamespace:
    """Snakemake's output settings of a plain `snakemake --cores N` run."""
    base = dict(
        printshellcmds=False,
        nocolor=False,
        quiet=set(),
        debug_dag=False,
        verbose=False,
        show_failed_logs=True,
        stdout=False,
        dryrun=False,
    )
    return SimpleNamespace(**{**base, **overrides})


def screen(raw: str) -> list[str]:
    """The lines a terminal shows for ``raw``: a carriage return rewrites its line."""
    lines = [ANSI.sub("", line.split("\r")[-1]) for line in raw.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def record(event: LogEvent | None, msg: str = "", level: int = logging.INFO, **extra):
    """A log record as Snakemake makes one: the event and its fields as attributes."""
    made = logging.LogRecord("snakemake.logging", level, "x.py", 1, msg, (), None)
    if event is not None:
        made.event = event
    for key, value in extra.items():
        setattr(made, key, value)
    return made


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- when the display is on ------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "environ", "options", "display"),
    [
        (Terminal(), {}, {}, True),
        (io.StringIO(), {}, {}, False),  # a pipe or a file
        (Terminal(), {"CI": "true"}, {}, False),
        (Terminal(), {"TERM": "dumb"}, {}, False),
        (Terminal(), {}, {"dryrun": True}, False),  # a dry run's output is its job list
        (Terminal(), {}, {"verbose": True}, False),
        (Terminal(), {}, {"quiet": {"progress"}}, False),
    ],
    ids=["terminal", "pipe", "ci", "dumb-terminal", "dry-run", "verbose", "quiet"],
)
def test_display_only_in_an_interactive_terminal(stream, environ, options, display):
    assert wants_display(stream, settings(**options), environ) is display


def test_outside_a_terminal_snakemake_keeps_its_own_log(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    handler = LogHandler(common_settings=settings(), settings=None)
    # Not a stream handler: Snakemake then adds its plain one (snakemake.logging.LoggerManager).
    assert handler.writes_to_stream is False
    handler.handle(record(LogEvent.RUN_INFO, stats={"plan": 1, "total": 1}))
    handler.handle(record(LogEvent.JOB_INFO, jobid=1, rule_name="plan", wildcards={}))
    handler.close()
    assert pipe.getvalue() == ""


def test_snakemake_finds_the_plugin():
    from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry

    assert LoggerPluginRegistry().get_plugin("memsweep").log_handler is LogHandler


# --- what it shows ---------------------------------------------------------------------


def test_time_left_is_the_mean_job_time_of_each_rule_over_the_jobs_run_at_once():
    clock = Clock()
    tally = Tally(clock=clock)
    tally.plan({"measure": 4, "all": 1, "total": 5})
    tally.start(1, "measure", "measure a")
    tally.start(2, "measure", "measure b")
    assert tally.seconds_left() is None  # nothing finished: no basis for an estimate
    clock.now = 10.0
    assert tally.finish(1, ok=True) == ("measure", "measure a", 10.0)
    # Left: 2 measure jobs not started (10 s each), `all` (the mean of every job: 10 s),
    # job 2 is as old as a measure job takes; two jobs ran at once on average (20 s of
    # job time in 10 s), so 30 s of work takes 15 s.
    assert tally.seconds_left() == pytest.approx(15.0)


def test_terminal_shows_counts_failures_and_time_left(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress, "TICK_SECONDS", 3600.0)  # only events redraw here
    handler = LogHandler(common_settings=settings(), settings=None)
    clock = Clock()
    handler.tally = Tally(clock=clock)
    assert handler.writes_to_stream is True

    def job(jobid, rule, **wildcards):
        return record(LogEvent.JOB_INFO, jobid=jobid, rule_name=rule, wildcards=wildcards)

    handler.handle(record(LogEvent.RUN_INFO, stats={"plan": 1, "measure": 2, "all": 1, "total": 4}))
    handler.handle(record(None, "Select jobs to execute..."))  # scheduling chatter: dropped
    handler.handle(job(1, "plan"))
    clock.now = 5.0
    handler.handle(record(LogEvent.JOB_FINISHED, job_id=1))
    handler.handle(job(2, "measure", backend="lean", grid=4))
    handler.handle(job(3, "measure", backend="lean", grid=5))
    clock.now = 15.0
    handler.handle(record(LogEvent.JOB_FINISHED, job_id=2))
    running = screen(terminal.getvalue())[-1]
    assert re.search(r"2/4 jobs done, 1 running, 0 failed, 15 s elapsed, ~\d+ s left$", running)
    clock.now = 16.0
    handler.handle(
        record(LogEvent.JOB_ERROR, "Error in rule measure", logging.ERROR, jobid=3, log=["m.log"])
    )
    handler.handle(record(None, "Exiting because a job execution failed.", logging.ERROR))
    handler.handle(record(None, "Complete log(s): /run/.snakemake/log/x.log"))
    handler.close()

    assert screen(terminal.getvalue()) == [
        "4 jobs to run: plan 1, measure 2, all 1",
        "✓ plan  (5 s)",
        "✓ measure backend=lean grid=4  (10 s)",
        "✗ measure backend=lean grid=5 FAILED, log: m.log",
        "Exiting because a job execution failed.",
        "[" + "█" * 20 + "░" * 20 + "] 2/4 jobs done, 1 failed, 16 s elapsed",
        "Full log: /run/.snakemake/log/x.log",
    ]


def test_a_failed_group_counts_each_of_its_jobs(monkeypatch):
    """A SLURM job that ran several measure jobs (profiles/slurm's group) and failed."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = LogHandler(common_settings=settings(nocolor=True), settings=None)
    handler.handle(record(LogEvent.RUN_INFO, stats={"measure": 3, "total": 3}))
    for jobid, grid in ((1, 4), (2, 5)):
        handler.handle(
            record(LogEvent.JOB_INFO, jobid=jobid, rule_name="measure", wildcards={"grid": grid})
        )
    errors = [{"jobid": j, "rule_name": "measure", "log": [f"{j}.log"]} for j in (1, 2)]
    group_error = record(LogEvent.GROUP_ERROR, "Error", logging.ERROR, job_error_info=errors)
    handler.handle(group_error)
    handler.close()
    lines = screen(terminal.getvalue())
    assert lines[1:3] == [
        "✗ measure grid=4 FAILED, log: 1.log",
        "✗ measure grid=5 FAILED, log: 2.log",
    ]
    assert re.search(r"\] 0/3 jobs done, 2 failed, \d+ s elapsed$", lines[-1])


# --- the real workflow -----------------------------------------------------------------


def run_in_terminal(workdir: Path, *args: str, timeout: float = 900) -> tuple[int, str]:
    """snakemake with its output on a pseudo-terminal (120 columns), as a shell has it."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PYTHONPATH=str(workdir / "src"), TERM="xterm")
    process = subprocess.Popen(
        [SNAKEMAKE, "--cores", "2", *args],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    output, deadline = bytearray(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([controller], [], [], 1.0)[0]:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: every process holding the terminal has exited
                    break
                if not chunk:
                    break
                output += chunk
        else:
            process.kill()
            raise AssertionError(f"snakemake {args} ran past {timeout} s")
    finally:
        os.close(controller)
    return process.wait(timeout=60), output.decode("utf-8", errors="replace")


def run_in_pipe(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PYTHONPATH=str(workdir / "src"), TERM="xterm")
    return subprocess.run(
        [SNAKEMAKE, "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def sweep_in_terminal(tmp_path_factory) -> tuple[Path, list[str]]:
    workdir = copy_workflow(tmp_path_factory.mktemp("progress"))
    write_config(workdir, TINY)
    returncode, output = run_in_terminal(workdir)
    assert returncode == 0, output[-6000:]
    return workdir, screen(output)


@pytest.mark.workflow
def test_tiny_sweep_fits_on_a_screen(sweep_in_terminal):
    workdir, lines = sweep_in_terminal
    # The profile checkpoint adds its jobs once it has run: the total grows by them.
    done = re.fullmatch(r"\[█+\] (\d+)/(\d+) jobs done, 0 failed, .+ elapsed", lines[-2])
    assert done and done[1] == done[2], "\n".join(lines)
    jobs = int(done[1])
    # The count announced before the checkpoint ran (once seen missing under a loaded
    # full suite: the finished count above is the one every job line is checked against).
    planned = [line for line in lines if re.match(r"\d+ jobs to run: ", line)]
    assert all(int(line.split()[0]) <= jobs for line in planned)
    finished = [line for line in lines if line.startswith("✓ ")]
    assert len(finished) == jobs  # one line per finished job
    assert any(line.startswith("✓ measure backend=") for line in finished)
    assert any(line.startswith("✓ profile ") for line in finished)
    # Besides those: the profile line, the plan's summary (workflow/rules/plan.smk's
    # onstart), the job count and the full log's path.
    assert len(lines) - len(finished) <= 30, "\n".join(lines)
    assert not [line for line in lines if line.lstrip().startswith(PLAIN_ONLY)]
    # The plain log is still kept, in full, where the last line says.
    full_log = Path(lines[-1].removeprefix("Full log: "))
    assert full_log.is_relative_to(workdir / ".snakemake/log")
    assert f"{jobs} of {jobs} steps (100%) done" in full_log.read_text()


@pytest.mark.workflow
def test_terminal_shows_a_failed_job_and_counts_it(sweep_in_terminal):
    workdir, _ = sweep_in_terminal
    script = workdir / "workflow/scripts/plan.py"
    text = script.read_text()
    script.write_text('raise SystemExit("broken on purpose")\n')
    try:
        returncode, output = run_in_terminal(workdir, "--force", "results/sweep/plan.parquet")
    finally:
        script.write_text(text)
    lines = screen(output)
    assert returncode != 0
    assert "✗ plan FAILED, log: results/logs/plan.log" in lines
    status = next(line for line in reversed(lines) if "jobs done" in line)
    assert re.search(r"\] 0/1 jobs done, 1 failed, .+ elapsed$", status), status


@pytest.mark.workflow
def test_pipe_gets_the_plain_log(sweep_in_terminal):
    workdir, _ = sweep_in_terminal
    result = run_in_pipe(workdir, "--force", "results/sweep/plan.parquet")
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stderr
    assert "localrule plan:" in log and "1 of 1 steps (100%) done" in log
    assert "jobs done" not in log and "\r" not in log
    # profiles/default leaves out printshellcmds: script rules printed "Shell command: None".
    assert "Shell command" not in log
    nothing = run_in_pipe(workdir, "results/sweep/plan.parquet")
    assert "Nothing to be done" in nothing.stderr
