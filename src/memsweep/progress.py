"""What a local ``snakemake`` run shows in a terminal: a progress line, one line per job.

A Snakemake logger plugin (``--logger memsweep``, set in ``profiles/default``; Snakemake
finds it as the package ``snakemake_logger_plugin_memsweep``). In a terminal it keeps one
status line at the bottom (a bar, jobs done of all, running, failed, elapsed and an
estimate of the time left) and prints one line per finished or failed job above it;
warnings and errors pass through. Anywhere else (a pipe, a file, CI, ``TERM=dumb``, dry
runs, ``--verbose``, ``--quiet``) it steps aside: it declares that it writes no stream,
so Snakemake keeps its own plain log, which tests, CI and SLURM jobs read. The plain log
is also always written to ``.snakemake/log/``; the last line names it.

Snakemake imports every logger plugin at each start: this module imports nothing heavy.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

# Redraws of the status line while nothing happens, so elapsed and time left move on.
TICK_SECONDS = 1.0
NOTHING_TO_DO = "Nothing to be done"
COMPLETE_LOG = "Complete log"


def in_ci(environ: Mapping[str, str]) -> bool:
    """CI=true (GitHub Actions, GitLab CI and most others set it), as tests/conftest.py reads it."""
    return environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def wants_display(stream, settings, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this run gets the progress display instead of Snakemake's plain log."""
    isatty = getattr(stream, "isatty", None)
    return bool(
        isatty
        and isatty()
        and not in_ci(environ)
        and environ.get("TERM") != "dumb"
        # A dry run's output is its list of jobs; --verbose and --debug-dag ask for
        # detail, --quiet for less than a line per job: the plain log does each.
        and not settings.dryrun
        and not settings.verbose
        and not settings.debug_dag
        and not settings.quiet
    )


def duration(seconds: float) -> str:
    """42 s, 3 min 05 s, 1 h 05 min."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class Tally:
    """The run's jobs as the log events report them, and the time left estimated from them.

    ``clock`` is injectable so that the estimate can be checked without waiting.
    """

    clock: Callable[[], float] = time.monotonic
    planned: Counter = field(default_factory=Counter)  # rule -> jobs in this run
    started: Counter = field(default_factory=Counter)  # rule -> jobs started so far
    running: dict = field(default_factory=dict)  # jobid -> (rule, label, start time)
    durations: dict = field(default_factory=dict)  # rule -> seconds of each finished job
    total: int = 0
    done: int = 0
    failed: int = 0
    began: float | None = None

    def plan(self, per_rule: Mapping[str, int]) -> None:
        self.planned = Counter({rule: n for rule, n in per_rule.items() if rule != "total"})
        self.total = max(self.total, sum(self.planned.values()))
        self.began = self.clock()

    def start(self, jobid: int, rule: str, label: str) -> None:
        self.started[rule] += 1
        # A checkpoint can add jobs that the first plan did not count.
        self.planned[rule] = max(self.planned[rule], self.started[rule])
        self.total = max(self.total, sum(self.planned.values()))
        self.running[jobid] = (rule, label, self.clock())
        if self.began is None:
            self.began = self.clock()

    def finish(self, jobid: int, ok: bool) -> tuple[str, str, float] | None:
        """Close a job; (rule, label, seconds) of a job this tally saw start."""
        if ok:
            self.done += 1
        else:
            self.failed += 1
        job = self.running.pop(jobid, None)
        if job is None:
            return None
        rule, label, started = job
        seconds = self.clock() - started
        if ok:
            self.durations.setdefault(rule, []).append(seconds)
        return rule, label, seconds

    def elapsed(self) -> float:
        return 0.0 if self.began is None else self.clock() - self.began

    def seconds_left(self) -> float | None:
        """Work left (each rule's mean job time, for every job not finished), spread over the
        jobs the run has kept busy on average. None until a job has finished."""
        finished = [s for times in self.durations.values() for s in times]
        elapsed = self.elapsed()
        if not finished or elapsed <= 0:
            return None
        overall = sum(finished) / len(finished)

        def mean(rule: str) -> float:
            times = self.durations.get(rule)
            return sum(times) / len(times) if times else overall

        now = self.clock()
        waiting = sum((self.planned[r] - self.started[r]) * mean(r) for r in self.planned)
        in_flight = [now - started for _, _, started in self.running.values()]
        running_left = sum(
            max(mean(rule) - (now - started), 0.0) for rule, _, started in self.running.values()
        )
        parallel = max(1.0, (sum(finished) + sum(in_flight)) / elapsed)
        return (waiting + running_left) / parallel


class Screen:
    """Writes finished-job lines above a status line that is redrawn in place."""

    def __init__(self, stream, color: bool):
        self.stream = stream
        self.color = color
        encoding = (getattr(stream, "encoding", None) or "ascii").lower()
        self.fancy = encoding.replace("-", "").startswith("utf")
        self.status_shown = False

    def width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return shutil.get_terminal_size().columns

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def line(self, text: str, mark: str = "", code: str = "") -> None:
        """One line above the status line, cut to the terminal's width so it stays one line."""
        limit = self.width() - 1 - (len(mark) + 1 if mark else 0)
        if len(text) > limit:
            text = text[: max(limit - 1, 0)] + ("…" if self.fancy else "~")
        head = f"{self.paint(mark, code)} " if mark else ""
        self.stream.write(("\r\033[K" if self.status_shown else "") + head + text + "\n")
        self.status_shown = False

    def block(self, text: str) -> None:
        """A warning or an error, whole: it may span lines, and every one of them matters."""
        self.stream.write(("\r\033[K" if self.status_shown else "") + text.rstrip("\n") + "\n")
        self.status_shown = False

    def status(self, tally: Tally, final: bool = False) -> None:
        counts = f"{tally.done}/{tally.total} jobs done"
        failed = f"{tally.failed} failed"
        parts = [counts if final else f"{counts}, {len(tally.running)} running", failed]
        parts.append(f"{duration(tally.elapsed())} elapsed")
        if not final:
            left = tally.seconds_left()
            parts.append("estimating time left" if left is None else f"~{duration(left)} left")
        text = ", ".join(parts)
        room = self.width() - 1 - len(text) - 3
        if tally.failed:
            text = text.replace(failed, self.paint(failed, "31"), 1)
        bar = ""
        if room >= 10:
            fill, empty = ("█", "░") if self.fancy else ("#", "-")
            cells = min(room, 40)
            full = cells * tally.done // tally.total if tally.total else 0
            bar = "[" + self.paint(fill * full, "32") + empty * (cells - full) + "] "
        self.stream.write("\r\033[K" + bar + text + ("\n" if final else ""))
        self.status_shown = not final

    def flush(self) -> None:
        self.stream.flush()


def job_label(rule: str, wildcards) -> str:
    values = " ".join(f"{k}={v}" for k, v in dict(wildcards or {}).items())
    return f"{rule} {values}".strip()


class LogHandler(LogHandlerBase):
    """The plugin's handler: a progress display in a terminal, nothing elsewhere."""

    def __post_init__(self) -> None:
        stream = sys.stdout if self.common_settings.stdout else sys.stderr
        self.live = wants_display(stream, self.common_settings)
        color = not self.common_settings.nocolor and "NO_COLOR" not in os.environ
        self.screen = Screen(stream, color)
        self.tally = Tally()
        self.drawing = threading.Lock()  # the ticker and emit both write; not Handler.lock
        self.stopped = threading.Event()
        self.ticker: threading.Thread | None = None
        self.showing = False  # the status line is on screen from the first job on
        self.finished = False

    # Snakemake adds its own plain stream handler unless a plugin writes to the stream.
    @property
    def writes_to_stream(self) -> bool:
        return self.live

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return False

    @property
    def has_formatter(self) -> bool:
        return False

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.live:
            return
        try:
            with self.drawing:
                self.handle_record(record)
                self.screen.flush()
        except Exception:
            self.handleError(record)

    def handle_record(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        tally, screen = self.tally, self.screen
        if event == LogEvent.RUN_INFO:
            tally.plan(getattr(record, "stats", {}))
            per_rule = ", ".join(f"{rule} {n}" for rule, n in tally.planned.items())
            screen.line(f"{tally.total} jobs to run: {per_rule}")
        elif event == LogEvent.JOB_INFO:
            rule = record.rule_name
            tally.start(record.jobid, rule, job_label(rule, getattr(record, "wildcards", {})))
            # From the first job on: the workflow's onstart output comes before it.
            self.showing = True
            self.start_ticker()
        elif event == LogEvent.JOB_FINISHED:
            job = tally.finish(record.job_id, ok=True)
            if job:
                screen.line(f"{job[1]}  ({duration(job[2])})", "✓" if screen.fancy else "ok", "32")
        elif event == LogEvent.JOB_ERROR:
            self.failed_job(vars(record))
        elif event == LogEvent.GROUP_ERROR:  # a SLURM job that ran several (profiles/slurm)
            for job in getattr(record, "job_error_info", None) or []:
                self.failed_job(job)
        elif event == LogEvent.PROGRESS:
            tally.total = max(tally.total, getattr(record, "total", 0))
        elif event is None and record.levelno == logging.INFO:
            message = record.getMessage()
            # Everything else at INFO without an event is the plain log's scheduling chatter.
            if message.startswith(NOTHING_TO_DO):
                screen.line(message)
            elif message.startswith(COMPLETE_LOG):
                self.finish()
                screen.line(message.replace("Complete log(s)", "Full log"))
        elif record.levelno >= logging.WARNING:
            screen.block(record.getMessage())
        if self.showing and not self.finished:
            screen.status(tally)

    def failed_job(self, error: Mapping) -> None:
        """One line for a job that failed: its rule and wildcards, and its log file."""
        job = self.tally.finish(error.get("jobid"), ok=False)
        label = job[1] if job else error.get("rule_name", "a job")
        logs = ", ".join(error.get("log") or []) or "no log file"
        mark = "✗" if self.screen.fancy else "FAILED"
        self.screen.line(f"{label} FAILED, log: {logs}", mark, "31")

    def start_ticker(self) -> None:
        if self.ticker is None:
            self.ticker = threading.Thread(target=self.tick, name="memsweep-progress", daemon=True)
            self.ticker.start()

    def tick(self) -> None:
        while not self.stopped.wait(TICK_SECONDS):
            with self.drawing:
                if self.showing and not self.finished:
                    self.screen.status(self.tally)
                    self.screen.flush()

    def finish(self) -> None:
        """The last status line, kept on screen; once, however often Snakemake closes."""
        self.stopped.set()
        if self.showing and not self.finished:
            self.screen.status(self.tally, final=True)
        self.finished = True

    def close(self) -> None:
        if self.live:
            with self.drawing:
                self.finish()
                self.screen.flush()
        super().close()
