"""Shared fixtures: a real sandbox server on loopback and helpers to run the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import pytest
import simplejson

from target_customergauge_stream.sandbox import Sandbox

TEST_API_KEY = "sandbox-test-key-4f9c2a"
TARGET_COMMAND = [sys.executable, "-m", "target_customergauge_stream.target"]


@pytest.fixture
def sandbox(tmp_path: Path) -> t.Iterator[Sandbox]:
    """Start a sandbox on 127.0.0.1 with a free port, storing uploads under tmp_path."""
    with Sandbox(api_key=TEST_API_KEY, store_dir=tmp_path / "sandbox") as server:
        yield server


def target_config(sandbox: Sandbox, **overrides: t.Any) -> dict[str, t.Any]:
    """Return a target config that points at the sandbox."""
    store_dir = sandbox.state.store_dir
    ledger_dir = store_dir.parent if store_dir else Path(tempfile.mkdtemp())
    config: dict[str, t.Any] = {
        "api_key": TEST_API_KEY,
        "api_url": sandbox.endpoint_url(),
        "retry_backoff_seconds": 0.01,
        "request_timeout": 10,
        # Each test's files live beside its sandbox, never in the work tree.
        "ledger_path": str(ledger_dir / "ledger.sqlite"),
        "failed_uploads_dir": str(ledger_dir / "failed-uploads"),
        "rejects_path": str(ledger_dir / "rejects.jsonl"),
        "dry_run_dir": str(ledger_dir / "dry-run"),
    }
    config.update(overrides)
    return config


class TargetRun(t.NamedTuple):
    """What one CLI run of the target produced."""

    returncode: int
    states: list[dict[str, t.Any]]
    stderr: str


def run_target(
    config: dict[str, t.Any],
    messages: t.Iterable[dict[str, t.Any]] | str,
    tmp_path: Path,
    *,
    timeout: float = 120,
) -> TargetRun:
    """Run the target CLI as a subprocess on the given Singer messages."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    if isinstance(messages, str):
        stdin = messages
    else:
        # simplejson writes Decimal values as JSON numbers, digit for digit.
        stdin = "".join(
            simplejson.dumps(message, use_decimal=True, ensure_ascii=False) + "\n"
            for message in messages
        )
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    completed = subprocess.run(
        [*TARGET_COMMAND, "--config", str(config_path)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        check=False,
    )
    states = [
        json.loads(line) for line in completed.stdout.splitlines() if line.strip()
    ]
    return TargetRun(completed.returncode, states, completed.stderr)


def run_replay(config_path: Path) -> subprocess.CompletedProcess[str]:
    """Run target-customergauge-stream-replay with a config file."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "target_customergauge_stream.replay",
            "--config",
            str(config_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def schema_message(
    stream: str, properties: dict[str, t.Any], key_properties: list[str] | None = None
) -> dict[str, t.Any]:
    """Build a SCHEMA message."""
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": key_properties or [],
    }


def record_message(stream: str, record: dict[str, t.Any]) -> dict[str, t.Any]:
    """Build a RECORD message."""
    return {"type": "RECORD", "stream": stream, "record": record}


def state_message(value: dict[str, t.Any]) -> dict[str, t.Any]:
    """Build a STATE message."""
    return {"type": "STATE", "value": value}
