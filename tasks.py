"""Project tasks that need nothing but Python 3.10 or newer.

    python3 tasks.py demo   # example CSV -> Meltano -> target -> local sandbox
    python3 tasks.py test   # the test suite

Both create `.venv` in the repository on first use and install the project
into it, so a fresh clone needs no other setup.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
DEMO_OUTPUT = ROOT / "output" / "sandbox-uploads"
SANDBOX_START_SECONDS = 20


def _run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    subprocess.run([str(part) for part in command], check=True, cwd=ROOT, env=env)  # noqa: S603


def ensure_venv(extras: str) -> None:
    """Create `.venv` if needed and install the project with the given extras."""
    if sys.version_info < (3, 10):  # noqa: UP036 - tasks.py may run on any Python
        sys.exit("Python 3.10 or newer is required.")
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", f".[{extras}]")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SANDBOX_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(
                "The sandbox exited before it started listening; see its output above."
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(
        f"The sandbox did not listen on port {port} within {SANDBOX_START_SECONDS} s."
    )


def demo() -> None:
    """Run the example CSV through Meltano and the target into a local sandbox."""
    ensure_venv("meltano")
    shutil.rmtree(ROOT / "output", ignore_errors=True)
    port = _free_port()
    # A throwaway key: the sandbox and the target share it for this run only.
    api_key = f"demo-{secrets.token_hex(8)}"
    environment = {
        **os.environ,
        "CUSTOMERGAUGE_API_KEY": api_key,
        "TARGET_CUSTOMERGAUGE_STREAM_API_URL": (
            f"http://127.0.0.1:{port}/v4.1/stream/transactional.json"
        ),
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    sandbox_command = [
        str(BIN / "customergauge-stream-sandbox"),
        "serve",
        "--port",
        str(port),
        "--store-dir",
        str(DEMO_OUTPUT),
        "--required-field",
        "Email",
        "--clear",
    ]
    sandbox = subprocess.Popen(  # noqa: S603
        sandbox_command,
        cwd=ROOT,
        env={**environment, "CUSTOMERGAUGE_SANDBOX_API_KEY": api_key},
    )
    try:
        _wait_for_port(port, sandbox)
        meltano = BIN / "meltano"
        pipeline = [
            "run",
            "--full-refresh",
            "tap-spreadsheets",
            "target-customergauge-stream",
        ]
        _run(meltano, "install", env=environment)
        print(
            "\nFirst a dry run: the exact bodies, written to output/dry-run/.",
            flush=True,
        )
        _run(
            meltano,
            *pipeline,
            env={**environment, "TARGET_CUSTOMERGAUGE_STREAM_DRY_RUN": "true"},
        )
        print("\nThen the real run into the sandbox.", flush=True)
        _run(meltano, *pipeline, env=environment)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    print("\nWhat the sandbox received:", flush=True)
    _run(BIN / "customergauge-stream-sandbox", "summary", "--store-dir", DEMO_OUTPUT)
    rejects = ROOT / "output" / "rejected-records.jsonl"
    if rejects.exists():
        count = len(rejects.read_text(encoding="utf-8").splitlines())
        print(f"{count} invalid records were set aside in {rejects.relative_to(ROOT)}.")


def test(pytest_arguments: list[str]) -> None:
    """Install the test dependencies, run the linters, then pytest."""
    ensure_venv("test")
    _run(BIN / "python", "-m", "ruff", "check", ".")
    _run(BIN / "python", "-m", "ruff", "format", "--check", ".")
    _run(BIN / "python", "-m", "mypy", "target_customergauge_stream")
    _run(BIN / "python", "-m", "pytest", *pytest_arguments)


def main() -> None:
    """Parse the task name and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "task",
        choices=["demo", "test"],
        help="What to run; arguments after 'test' go to pytest.",
    )
    arguments, pytest_arguments = parser.parse_known_args()
    if pytest_arguments and arguments.task != "test":
        parser.error(f"unrecognized arguments: {' '.join(pytest_arguments)}")
    try:
        if arguments.task == "demo":
            demo()
        else:
            test(pytest_arguments)
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)


if __name__ == "__main__":
    main()
