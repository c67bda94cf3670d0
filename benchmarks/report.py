"""Describe the machine and summarise measurements as tables and goal checks."""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import os
import platform
import statistics
import typing as t
from dataclasses import asdict, dataclass
from pathlib import Path

API_MAX_RECORDS = 2000


@dataclass
class RunResult:
    """One measured run of one runner.

    Attributes:
        runner: Key of the runner, such as 'target' or 'raw'.
        round: Round number, from 1.
        records: Records in the input.
        wall_seconds: Time from start to exit.
        cpu_seconds: User plus system CPU time of the child.
        peak_rss_mib: Maximum resident set size of the child, in MiB.
        records_per_second: Records divided by wall seconds.
        uploads: Uploads the sandbox accepted, for the target only.
        upload_bytes: Body bytes the sandbox accepted, for the target only.
        records_received: Records the sandbox accepted, for the target only.
    """

    runner: str
    round: int
    records: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    records_per_second: float
    uploads: int | None = None
    upload_bytes: int | None = None
    records_received: int | None = None

    def to_json(self) -> dict[str, t.Any]:
        """Return the run as a JSON-ready dictionary."""
        return asdict(self)


@dataclass
class Summary:
    """Medians over the runs of one runner."""

    runner: str
    label: str
    runs: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    records_per_second: float
    walls: list[float]

    def to_json(self) -> dict[str, t.Any]:
        """Return the summary as a JSON-ready dictionary."""
        return asdict(self)


def summarise(runner: str, label: str, results: list[RunResult]) -> Summary:
    """Take the median of each measurement over a runner's runs."""
    wall = statistics.median(result.wall_seconds for result in results)
    return Summary(
        runner=runner,
        label=label,
        runs=len(results),
        wall_seconds=wall,
        cpu_seconds=statistics.median(result.cpu_seconds for result in results),
        peak_rss_mib=statistics.median(result.peak_rss_mib for result in results),
        records_per_second=results[0].records / wall if wall > 0 else math.inf,
        walls=[result.wall_seconds for result in results],
    )


def format_table(summaries: list[Summary]) -> str:
    """Lay out the medians as a fixed-width text table."""
    label_width = max(len("runner"), *(len(summary.label) for summary in summaries))
    header = (
        f"{'runner':<{label_width}}  {'wall s':>8}  {'CPU s':>8}  "
        f"{'peak MiB':>8}  {'records/s':>10}  wall s of each run"
    )
    lines = [header, "-" * len(header)]
    for summary in summaries:
        walls = " ".join(f"{wall:.2f}" for wall in summary.walls)
        lines.append(
            f"{summary.label:<{label_width}}  {summary.wall_seconds:>8.2f}  "
            f"{summary.cpu_seconds:>8.2f}  {summary.peak_rss_mib:>8.1f}  "
            f"{summary.records_per_second:>10,.0f}  {walls}"
        )
    return "\n".join(lines)


@dataclass
class UploadCheck:
    """Uploads the sandbox received against the fewest that the caps allow.

    The fewest is max(ceil(records / 2000), ceil(body bytes / cap)), and the
    goal allows one upload more than that.
    """

    input_name: str
    records: int
    uploads: int
    body_bytes: int
    cap_bytes: int
    fewest: int
    met: bool

    def describe(self) -> str:
        """Write the check as one line of text."""
        by_records = math.ceil(self.records / API_MAX_RECORDS)
        by_bytes = math.ceil(self.body_bytes / self.cap_bytes)
        verdict = "met" if self.met else "NOT met"
        return (
            f"{self.input_name}: {self.uploads} "
            f"{'upload' if self.uploads == 1 else 'uploads'}, {self.body_bytes:,} body "
            f"bytes; max(ceil({self.records:,}/{API_MAX_RECORDS}), "
            f"ceil(bytes/{self.cap_bytes:,})) = max({by_records}, {by_bytes}) = "
            f"{self.fewest}; goal <= {self.fewest + 1}: {verdict}"
        )

    def to_json(self) -> dict[str, t.Any]:
        """Return the check as a JSON-ready dictionary."""
        return asdict(self)


def check_uploads(
    input_name: str, records: int, uploads: int, body_bytes: int, cap_bytes: int
) -> UploadCheck:
    """Compare an upload count with max(ceil(records/2000), ceil(bytes/cap))."""
    fewest = max(
        math.ceil(records / API_MAX_RECORDS), math.ceil(body_bytes / cap_bytes)
    )
    return UploadCheck(
        input_name=input_name,
        records=records,
        uploads=uploads,
        body_bytes=body_bytes,
        cap_bytes=cap_bytes,
        fewest=fewest,
        met=fewest <= uploads <= fewest + 1,
    )


def _read_first(path: str, prefix: str) -> str | None:
    try:
        with Path(path).open(encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_machine() -> dict[str, t.Any]:
    """Collect the date, CPU, memory, Python and package versions of this run."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpu_model": _read_first("/proc/cpuinfo", "model name"),
        "cpus_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_total": _read_first("/proc/meminfo", "MemTotal"),
        "system": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            name: _version(name)
            for name in ("target-customergauge-stream", "singer-sdk", "lxml")
        },
    }


def format_machine(machine: dict[str, t.Any]) -> str:
    """Write the machine description as a few lines of text."""
    packages = ", ".join(
        f"{name} {version}" for name, version in machine["packages"].items()
    )
    return (
        f"{machine['date']}; {machine['machine']}, {machine['cpus_available']} CPUs "
        f"({machine['cpu_model']}), {machine['memory_total']} memory\n"
        f"Python {machine['python']} on {machine['system']}; {packages}"
    )
