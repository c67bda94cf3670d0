"""The target CLI as a subprocess, uploading into a real sandbox server."""

from __future__ import annotations

import datetime
import json
import subprocess
import typing as t
from pathlib import Path

from target_customergauge_stream.sandbox import Sandbox
from tests.conftest import (
    TARGET_COMMAND,
    TEST_API_KEY,
    record_message,
    run_target,
    schema_message,
    state_message,
    target_config,
)
from tests.fake_records import ORDER_PROPERTIES, fake_orders

ROOT = Path(__file__).resolve().parents[1]


def expected_fields(record: dict[str, t.Any]) -> dict[str, str]:
    """What the sandbox should read back for one fake order, with timezone UTC."""
    expected: dict[str, str] = {}
    for name, value in record.items():
        if value is None:
            continue
        if name == "order_date":
            moment = datetime.datetime.fromisoformat(value).astimezone(
                datetime.timezone.utc
            )
            expected[name] = moment.strftime("%Y-%m-%d %H:%M:%S")
        elif isinstance(value, bool):
            expected[name] = "true" if value else "false"
        elif name == "Amount":
            expected[name] = format(value, "f")
        else:
            expected[name] = value
    return expected


def order_messages(
    records: list[dict[str, t.Any]], state_every: int
) -> list[dict[str, t.Any]]:
    messages = [schema_message("orders", ORDER_PROPERTIES, ["Email"])]
    for index, record in enumerate(records, start=1):
        messages.append(record_message("orders", record))
        if index % state_every == 0:
            messages.append(state_message({"bookmarks": {"orders": index}}))
    return messages


def test_cli_delivers_every_record_once(sandbox: Sandbox, tmp_path) -> None:
    records = fake_orders(4500)
    config = target_config(sandbox, max_upload_bytes=300_000)

    run = run_target(config, order_messages(records, state_every=1000), tmp_path)

    assert run.returncode == 0, run.stderr
    received = sandbox.records()
    assert len(received) == len(records)
    assert [row["Email"] for row in received] == [record["Email"] for record in records]
    for sent, got in zip(records, received, strict=True):
        assert got == expected_fields(sent)
    assert run.states[-1] == {"bookmarks": {"orders": 4000}}


def test_cli_uploads_respect_both_caps(sandbox: Sandbox, tmp_path) -> None:
    records = fake_orders(4500)
    config = target_config(sandbox, max_upload_bytes=300_000)

    run = run_target(config, order_messages(records, state_every=1000), tmp_path)

    assert run.returncode == 0, run.stderr
    uploads = sandbox.state.uploads
    assert all(len(upload.records) <= 2000 for upload in uploads)
    assert all(upload.size <= 300_000 for upload in uploads)
    total_bytes = sum(upload.size for upload in uploads)
    # Packed full: at most one upload more than the byte volume requires.
    assert len(uploads) <= -(-total_bytes // 300_000) + 1


def test_cli_small_records_fill_uploads(sandbox: Sandbox, tmp_path) -> None:
    records = [{"Email": f"c{index}@example.com"} for index in range(4001)]
    messages = [schema_message("tiny", {"Email": {"type": "string"}})]
    messages += [record_message("tiny", record) for record in records]

    run = run_target(target_config(sandbox), messages, tmp_path)

    assert run.returncode == 0, run.stderr
    assert [len(upload.records) for upload in sandbox.state.uploads] == [2000, 2000, 1]


def test_cli_wrong_api_key_fails(sandbox: Sandbox, tmp_path) -> None:
    secret = "wrong-key-7d1e99"
    config = target_config(sandbox, api_key=secret)
    messages = [
        schema_message("orders", ORDER_PROPERTIES),
        record_message("orders", fake_orders(1)[0]),
        state_message({"bookmarks": {"orders": 1}}),
    ]

    run = run_target(config, messages, tmp_path)

    assert run.returncode != 0
    assert run.states == []
    assert "api_key" in run.stderr
    assert "HTTP 401" in run.stderr
    assert secret not in run.stderr
    assert sandbox.records() == []


def test_cli_xml_response_format(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(
        sandbox, api_url=sandbox.endpoint_url("xml"), response_format="xml"
    )
    records = fake_orders(10)

    run = run_target(config, order_messages(records, state_every=10), tmp_path)

    assert run.returncode == 0, run.stderr
    assert len(sandbox.records()) == 10
    assert run.states == [{"bookmarks": {"orders": 10}}]


def test_cli_config_error_hides_secret(tmp_path) -> None:
    secret = "do-not-print-5c3b"
    config = {
        "api_key": secret,
        "api_url": "http://192.0.2.10/v4.1/stream/transactional.json",
    }

    run = run_target(config, "", tmp_path)

    assert run.returncode != 0
    assert "api_url" in run.stderr
    assert "https://" in run.stderr
    assert secret not in run.stderr


def test_cli_rejects_batch_size_above_cap(tmp_path) -> None:
    config = {"api_key": TEST_API_KEY, "batch_size_rows": 2001}

    run = run_target(config, "", tmp_path)

    assert run.returncode != 0
    assert "batch_size_rows" in run.stderr
    assert "2000" in run.stderr


def test_about_lists_settings() -> None:
    completed = subprocess.run(
        [*TARGET_COMMAND, "--about", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    about = json.loads(completed.stdout)
    properties = about["settings"]["properties"]
    for name in (
        "api_key",
        "region",
        "api_url",
        "response_format",
        "batch_size_rows",
        "max_upload_bytes",
        "request_timeout",
        "timezone",
    ):
        assert name in properties
    assert properties["api_key"]["secret"] is True
    assert properties["batch_size_rows"]["default"] == 2000
    assert properties["max_upload_bytes"]["default"] == 2_000_000
    assert properties["region"]["enum"] == ["eu", "us", "au"]


def test_structured_logs_carry_counts(sandbox: Sandbox, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(
        "SINGER_SDK_LOG_CONFIG", str(ROOT / "examples" / "logging-json.yml")
    )
    records = fake_orders(30)

    run = run_target(
        target_config(sandbox), order_messages(records, state_every=30), tmp_path
    )

    assert run.returncode == 0, run.stderr
    entries = [
        json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")
    ]
    summaries = [
        entry for entry in entries if entry["message"].startswith("Summary of stream")
    ]
    assert len(summaries) == 1
    fields = summaries[0]["extra"]
    assert summaries[0]["stream_name"] == "orders"
    assert fields["received"] == 30
    assert fields["uploaded"] == 30
    assert fields["uploads"] == 1
    uploads = [entry for entry in entries if entry["message"].startswith("Uploaded ")]
    assert uploads[0]["extra"]["records"] == 30


def test_stream_maps_and_metadata_fields(sandbox: Sandbox, tmp_path) -> None:
    # 'orders' goes through a stream map (the SDK's record path), 'tickets'
    # through none (the target's shorter path). Neither uploads _sdc_ fields.
    properties = {
        "Email": {"type": "string"},
        "Plan": {"type": ["string", "null"]},
        "_sdc_extracted_at": {"type": ["string", "null"]},
    }
    messages = [
        schema_message("orders", properties),
        schema_message("tickets", properties),
    ]
    for stream in ("orders", "tickets"):
        messages.extend(
            record_message(
                stream,
                {
                    "Email": f"{stream}{index}@example.com",
                    "Plan": "gold",
                    "_sdc_extracted_at": "2026-12-01T00:00:00+00:00",
                },
            )
            for index in range(3)
        )
    config = target_config(sandbox, stream_maps={"orders": {"Plan": "__NULL__"}})

    run = run_target(config, messages, tmp_path)

    assert run.returncode == 0, run.stderr
    received = {row["Email"]: row for row in sandbox.records()}
    assert received["orders0@example.com"] == {"Email": "orders0@example.com"}
    assert received["tickets0@example.com"] == {
        "Email": "tickets0@example.com",
        "Plan": "gold",
    }
    assert len(received) == 6


def test_record_metadata_added_when_asked(sandbox: Sandbox, tmp_path) -> None:
    messages = [
        schema_message("tickets", {"Email": {"type": "string"}}),
        record_message("tickets", {"Email": "m1@example.com"}),
    ]
    config = target_config(sandbox, add_record_metadata=True)

    run = run_target(config, messages, tmp_path)

    assert run.returncode == 0, run.stderr
    [received] = sandbox.records()
    assert received["Email"] == "m1@example.com"
    assert "_sdc_received_at" in received


def test_missing_key_property_names_stream(sandbox: Sandbox, tmp_path) -> None:
    messages = [
        schema_message("orders", {"Email": {"type": "string"}}, ["OrderId"]),
        record_message("orders", {"Email": "k1@example.com"}),
    ]

    run = run_target(target_config(sandbox), messages, tmp_path)

    assert run.returncode != 0
    assert "input line 2 of stream 'orders' lacks its key properties" in run.stderr
    assert "['OrderId']" in run.stderr
    assert "k1@example.com" not in run.stderr
    assert sandbox.records() == []
