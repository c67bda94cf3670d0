"""Start the Stream API sandbox as its own process and read its counters."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import typing as t
import urllib.request
from pathlib import Path

from measure import BenchmarkError, stderr_tail

HOST = "127.0.0.1"
API_PATH = "/v4.1/stream/transactional.json"
START_TIMEOUT_SECONDS = 20
REQUEST_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10


def sandbox_command() -> list[str]:
    """Return the command that runs `customergauge-stream-sandbox`.

    The console script next to this Python comes first, so that the sandbox
    runs from the same virtualenv as the harness.
    """
    script = Path(sys.executable).parent / "customergauge-stream-sandbox"
    if script.exists():
        return [str(script)]
    found = shutil.which("customergauge-stream-sandbox")
    if found is None:
        msg = (
            "customergauge-stream-sandbox not found next to "
            f"{sys.executable} or on PATH. Install the project first: "
            "pip install -e ."
        )
        raise BenchmarkError(msg)
    return [found]


def sandbox_supports_latency() -> bool:
    """Tell whether `customergauge-stream-sandbox serve` has a --latency flag."""
    completed = subprocess.run(  # noqa: S603 - fixed command
        [*sandbox_command(), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return "--latency" in completed.stdout


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class SandboxProcess:
    """A `customergauge-stream-sandbox serve` process on 127.0.0.1.

    Use it as a context manager: it starts on entry, once it accepts
    connections, and is terminated on exit.
    """

    def __init__(
        self,
        *,
        api_key: str,
        store_dir: Path,
        log_path: Path,
        latency: float | None = None,
    ) -> None:
        self.api_key = api_key
        self.store_dir = store_dir
        self.log_path = log_path
        self.latency = latency
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: t.BinaryIO | None = None

    @property
    def base_url(self) -> str:
        """URL of the server root."""
        return f"http://{HOST}:{self.port}"

    @property
    def endpoint_url(self) -> str:
        """Stream API URL for the target's `api_url` setting."""
        return f"{self.base_url}{API_PATH}"

    def __enter__(self) -> SandboxProcess:
        self.port = _free_port()
        command = [
            *sandbox_command(),
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--api-key",
            self.api_key,
            "--store-dir",
            str(self.store_dir),
            "--clear",
            # Only the raw bodies: the parsed .json copies would make the
            # sandbox, not the target, the slowest part of the benchmark.
            "--no-records-json",
        ]
        if self.latency is not None:
            command += ["--latency", str(self.latency)]
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(  # noqa: S603 - built from fixed parts
            command, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_until_listening()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                msg = (
                    f"The sandbox exited with status {self._process.returncode} "
                    f"before it started listening. The end of its output:\n"
                    f"{self._log_tail()}"
                )
                raise BenchmarkError(msg)
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        msg = (
            f"The sandbox did not listen on {HOST}:{self.port} within "
            f"{START_TIMEOUT_SECONDS} s. The end of its output:\n{self._log_tail()}"
        )
        raise BenchmarkError(msg)

    def _log_tail(self) -> str:
        if self._log is not None:
            self._log.flush()
        return stderr_tail(self.log_path)

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _request(self, method: str, path: str) -> t.Any:  # noqa: ANN401
        request = urllib.request.Request(f"{self.base_url}{path}", method=method)  # noqa: S310 - loopback http URL built here
        with urllib.request.urlopen(  # noqa: S310 - loopback http URL built here
            request, timeout=REQUEST_TIMEOUT_SECONDS
        ) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        """Forget every upload received so far."""
        self._request("DELETE", "/sandbox/uploads")

    def summary(self) -> dict[str, int]:
        """Return counts of accepted uploads, records, bytes and requests."""
        return t.cast("dict[str, int]", self._request("GET", "/sandbox/summary"))
