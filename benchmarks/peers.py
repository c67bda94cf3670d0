"""The virtualenv for peer targets, kept apart because their SDK pin may differ."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

from measure import BenchmarkError

if t.TYPE_CHECKING:
    from pathlib import Path

CSV_PACKAGE = "meltanolabs-target-csv"
CSV_VERSION = "0.5.0"
CSV_EXECUTABLE = "target-csv"
INSTALL_TIMEOUT_SECONDS = 900


def _bin(venv: Path) -> Path:
    return venv / ("Scripts" if sys.platform == "win32" else "bin")


def _run_setup_step(command: list[str], what: str) -> None:
    print("+", " ".join(command), flush=True)
    try:
        completed = subprocess.run(  # noqa: S603 - built from fixed parts
            command, timeout=INSTALL_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        msg = f"{what} timed out after {INSTALL_TIMEOUT_SECONDS} s."
        raise BenchmarkError(msg) from None
    if completed.returncode != 0:
        msg = (
            f"{what} failed with exit status {completed.returncode}; see the "
            f"output above. Run with --skip-peers to benchmark without it."
        )
        raise BenchmarkError(msg)


def installed_versions(venv: Path) -> dict[str, str]:
    """Return the versions of the CSV target and its SDK in the peer virtualenv."""
    script = (
        "import importlib.metadata as m, json; "
        f"print(json.dumps({{name: m.version(name) for name in "
        f"['{CSV_PACKAGE}', 'singer-sdk']}}))"
    )
    completed = subprocess.run(  # noqa: S603 - fixed command
        [str(_bin(venv) / "python"), "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        return {}
    return t.cast("dict[str, str]", json.loads(completed.stdout))


def ensure_csv_target(venv: Path) -> Path:
    """Create the peer virtualenv and install the CSV target when missing.

    Returns:
        Path of the `target-csv` executable.

    Raises:
        BenchmarkError: If creating the virtualenv or installing fails.
    """
    python = _bin(venv) / "python"
    executable = _bin(venv) / CSV_EXECUTABLE
    if not python.exists():
        _run_setup_step(
            [sys.executable, "-m", "venv", str(venv)],
            f"Creating the peer virtualenv {venv}",
        )
    if installed_versions(venv).get(CSV_PACKAGE) != CSV_VERSION:
        _run_setup_step(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"{CSV_PACKAGE}=={CSV_VERSION}",
            ],
            f"Installing {CSV_PACKAGE}=={CSV_VERSION} into {venv}",
        )
    if not executable.exists():
        msg = f"{executable} is missing after installing {CSV_PACKAGE}."
        raise BenchmarkError(msg)
    return executable
