"""Run one child process on an input file and measure its time and memory."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import typing as t
from dataclasses import dataclass

if t.TYPE_CHECKING:
    from pathlib import Path

# Lines of a failed child's standard error to show.
STDERR_TAIL_LINES = 30


class BenchmarkError(RuntimeError):
    """A runner failed, timed out or produced output that breaks the benchmark."""


@dataclass
class ChildUsage:
    """Resources that one child process used, from `os.wait4`.

    Attributes:
        wall_seconds: Time from start to exit, measured by the parent.
        cpu_seconds: User plus system CPU time of the child and its threads.
        peak_rss_mib: Maximum resident set size of the child, in MiB.
        exit_code: Exit status, or minus the signal number that ended it.
        timed_out: Whether the parent killed the child at its deadline.
    """

    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    exit_code: int
    timed_out: bool


def run_child(
    command: t.Sequence[str],
    *,
    input_path: Path,
    stdout_path: Path,
    stderr_path: Path,
    cwd: Path,
    timeout: float,
) -> ChildUsage:
    """Run a command with a file as standard input and wait for it to exit.

    Standard output and standard error go to files. The child is killed once
    `timeout` seconds have passed. CPU time and peak RSS come from the
    child's own resource usage (`os.wait4`), so other children of this process,
    such as the sandbox server, are not counted.
    """
    killed = threading.Event()
    with (
        input_path.open("rb") as stdin,
        stdout_path.open("wb") as stdout,
        stderr_path.open("wb") as stderr,
    ):
        start = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 - commands are built by this harness
            list(command), stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd
        )

        def kill_at_deadline() -> None:
            killed.set()
            process.kill()

        timer = threading.Timer(timeout, kill_at_deadline)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        wall_seconds = time.perf_counter() - start
    # os.wait4 reaped the child. Without its exit status Popen would warn that
    # the child is still running.
    process.returncode = os.waitstatus_to_exitcode(status)
    return ChildUsage(
        wall_seconds=wall_seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        # Linux reports ru_maxrss in KiB.
        peak_rss_mib=usage.ru_maxrss / 1024,
        exit_code=process.returncode,
        timed_out=killed.is_set(),
    )


def stderr_tail(stderr_path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    """Return the last lines of a child's standard error, for error messages."""
    text = stderr_path.read_text(encoding="utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def last_json_line(stdout_path: Path) -> t.Any:  # noqa: ANN401
    """Return the last non-empty line of a file parsed as JSON, or None."""
    last = None
    with stdout_path.open("rb") as lines:
        for line in lines:
            if line.strip():
                last = line
    if last is None:
        return None
    try:
        return json.loads(last)
    except ValueError:
        return None
