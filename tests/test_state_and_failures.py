"""STATE timing and failure handling, through the CLI and a real sandbox."""

from __future__ import annotations

import json

import pytest

from target_customergauge_stream.batching import Upload
from target_customergauge_stream.checkpoints import StateCheckpoints
from target_customergauge_stream.sandbox import Sandbox
from tests.conftest import (
    record_message,
    run_target,
    schema_message,
    state_message,
    target_config,
)

PROPERTIES = {"Email": {"type": "string"}, "Note": {"type": ["string", "null"]}}


def numbered_messages(count: int, state_every: int) -> list[dict]:
    messages = [schema_message("orders", PROPERTIES)]
    for index in range(1, count + 1):
        messages.append(record_message("orders", {"Email": f"c{index}@example.com"}))
        if index % state_every == 0:
            messages.append(state_message({"orders": index}))
    return messages


def test_state_follows_each_accepted_upload(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(sandbox, batch_size_rows=2)

    run = run_target(config, numbered_messages(6, state_every=2), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.states == [{"orders": 2}, {"orders": 4}, {"orders": 6}]
    assert len(sandbox.records()) == 6


def test_no_state_after_failed_upload(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["ok", "401"]
    config = target_config(sandbox, batch_size_rows=2)

    run = run_target(config, numbered_messages(6, state_every=2), tmp_path)

    assert run.returncode != 0
    assert run.states == [{"orders": 2}]
    assert [row["Email"] for row in sandbox.records()] == [
        "c1@example.com",
        "c2@example.com",
    ]
    assert "Upload 2 of stream 'orders'" in run.stderr


def test_state_waits_for_partial_upload(sandbox: Sandbox, tmp_path) -> None:
    # The STATE after record 3 can only go out once record 3, which sits in
    # a partly filled upload, is accepted at the end of the input.
    config = target_config(sandbox, batch_size_rows=2)

    run = run_target(config, numbered_messages(3, state_every=3), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.states == [{"orders": 3}]
    assert sandbox.state.summary()["uploads"] == 2


def test_state_passes_through_without_records(sandbox: Sandbox, tmp_path) -> None:
    messages = [
        schema_message("orders", PROPERTIES),
        state_message({"orders": 1}),
        state_message({"orders": 2, "note": 1.10}),
    ]

    run = run_target(target_config(sandbox), messages, tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.states[-1] == {"orders": 2, "note": 1.10}
    assert sandbox.state.summary()["requests"] == 0


def test_retry_after_server_error(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["503", "429", "ok"]

    run = run_target(
        target_config(sandbox), numbered_messages(3, state_every=3), tmp_path
    )

    assert run.returncode == 0, run.stderr
    assert len(sandbox.records()) == 3
    assert run.states == [{"orders": 3}]
    assert "attempt 1 of 9 failed" in run.stderr
    assert "attempt 2 of 9 failed" in run.stderr


def test_retries_end_with_failure(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["500", "502", "504"]
    config = target_config(sandbox, max_retries=2)

    run = run_target(config, numbered_messages(3, state_every=3), tmp_path)

    assert run.returncode != 0
    assert run.states == []
    assert "failed after 3 attempts" in run.stderr
    assert sandbox.state.summary()["requests"] == 3


def test_error_body_with_200_fails(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["error-200"]

    run = run_target(
        target_config(sandbox), numbered_messages(2, state_every=2), tmp_path
    )

    assert run.returncode != 0
    assert run.states == []
    assert "400003" in run.stderr
    assert "Failed to insert record" in run.stderr


def test_already_processed_counts_as_delivered(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["already-processed"]

    run = run_target(
        target_config(sandbox), numbered_messages(2, state_every=2), tmp_path
    )

    assert run.returncode == 0, run.stderr
    assert run.states == [{"orders": 2}]
    assert "already processed" in run.stderr


def test_too_large_record_stops_after_earlier(sandbox: Sandbox, tmp_path) -> None:
    messages = [schema_message("orders", PROPERTIES)]
    messages += [
        record_message("orders", {"Email": f"c{i}@example.com"}) for i in (1, 2)
    ]
    messages.append(state_message({"orders": 2}))
    messages.append(
        record_message("orders", {"Email": "big@example.com", "Note": "n" * 5000})
    )
    messages.append(record_message("orders", {"Email": "after@example.com"}))
    messages.append(state_message({"orders": 4}))
    config = target_config(sandbox, max_upload_bytes=2048)

    run = run_target(config, messages, tmp_path)

    assert run.returncode != 0
    assert [row["Email"] for row in sandbox.records()] == [
        "c1@example.com",
        "c2@example.com",
    ]
    assert run.states == [{"orders": 2}]
    assert "input line 5" in run.stderr
    assert "stream 'orders'" in run.stderr
    assert "2,048-byte cap" in run.stderr


def test_invalid_record_names_field_not_value(sandbox: Sandbox, tmp_path) -> None:
    secret_value = "private-value-81b2"
    messages = [
        schema_message(
            "orders", {"Email": {"type": "string"}, "Age": {"type": "integer"}}
        ),
        record_message("orders", {"Email": "ok@example.com", "Age": 40}),
        record_message("orders", {"Email": "bad@example.com", "Age": secret_value}),
    ]

    run = run_target(target_config(sandbox), messages, tmp_path)

    assert run.returncode != 0
    assert "input line 3" in run.stderr
    assert "'Age'" in run.stderr
    assert secret_value not in run.stderr
    assert "bad@example.com" not in run.stderr
    assert [row["Email"] for row in sandbox.records()] == ["ok@example.com"]


def test_invalid_date_names_field_not_value(sandbox: Sandbox, tmp_path) -> None:
    messages = [
        schema_message(
            "orders",
            {
                "Email": {"type": "string"},
                "When": {"type": "string", "format": "date-time"},
            },
        ),
        record_message(
            "orders", {"Email": "d@example.com", "When": "31/02/2024 private"}
        ),
    ]

    run = run_target(target_config(sandbox), messages, tmp_path)

    assert run.returncode != 0
    assert "'When'" in run.stderr
    assert "date-time" in run.stderr
    assert "31/02/2024" not in run.stderr


def test_bad_json_line_names_line(sandbox: Sandbox, tmp_path) -> None:
    lines = [
        json.dumps(schema_message("orders", PROPERTIES)),
        json.dumps(record_message("orders", {"Email": "first@example.com"})),
        '{"type": "RECORD", "stream": "orders", "record": {"Email": "x@example.com"',
    ]

    run = run_target(target_config(sandbox), "\n".join(lines) + "\n", tmp_path)

    assert run.returncode != 0
    assert "Input line 3 is not valid JSON" in run.stderr
    assert "x@example.com" not in run.stderr
    assert [row["Email"] for row in sandbox.records()] == ["first@example.com"]


@pytest.mark.parametrize(
    ("stream", "json_type"), [(["orders"], "array"), (7, "number"), (None, "null")]
)
def test_stream_name_not_text_names_line(
    sandbox: Sandbox, tmp_path, stream, json_type
) -> None:
    lines = [
        json.dumps(schema_message("orders", PROPERTIES)),
        json.dumps(record_message("orders", {"Email": "first@example.com"})),
        json.dumps(
            {"type": "RECORD", "stream": stream, "record": {"Email": "x@example.com"}}
        ),
    ]

    run = run_target(target_config(sandbox), "\n".join(lines) + "\n", tmp_path)

    assert run.returncode != 0
    assert (
        f"Input line 3: the 'stream' of this RECORD message is a JSON {json_type}"
        in run.stderr
    )
    assert "TypeError" not in run.stderr
    assert "x@example.com" not in run.stderr
    assert [row["Email"] for row in sandbox.records()] == ["first@example.com"]


def test_activate_version_stream_not_text(sandbox: Sandbox, tmp_path) -> None:
    lines = [
        json.dumps(schema_message("orders", PROPERTIES)),
        json.dumps({"type": "ACTIVATE_VERSION", "stream": ["orders"], "version": 1}),
    ]

    run = run_target(target_config(sandbox), "\n".join(lines) + "\n", tmp_path)

    assert run.returncode != 0
    assert "Input line 2: the 'stream' of this ACTIVATE_VERSION message" in run.stderr
    assert "TypeError" not in run.stderr


def test_stream_key_elsewhere_is_accepted(sandbox: Sandbox, tmp_path) -> None:
    # Only messages that name a stream must have a string there: a STATE with
    # an extra 'stream' key, or a schema with a 'stream' keyword, is fine.
    schema = schema_message("orders", PROPERTIES)
    schema["schema"]["stream"] = {"note": "a keyword some taps add"}
    lines = [
        json.dumps(schema),
        json.dumps(record_message("orders", {"Email": "first@example.com"})),
        json.dumps({"type": "STATE", "value": {"orders": 1}, "stream": None}),
    ]

    run = run_target(target_config(sandbox), "\n".join(lines) + "\n", tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.states == [{"orders": 1}]
    assert [row["Email"] for row in sandbox.records()] == ["first@example.com"]


def test_nan_number_is_invalid(sandbox: Sandbox, tmp_path) -> None:
    schema = schema_message(
        "orders", {"Email": {"type": "string"}, "Score": {"type": ["number", "null"]}}
    )
    lines = [
        json.dumps(schema),
        '{"type": "RECORD", "stream": "orders", '
        '"record": {"Email": "n@example.com", "Score": NaN}}',
    ]
    config = target_config(sandbox, validate_records=False)

    run = run_target(config, "\n".join(lines) + "\n", tmp_path)

    assert run.returncode != 0
    assert "'Score'" in run.stderr
    assert "NaN" in run.stderr
    assert sandbox.records() == []


def test_colliding_property_names_rejected(sandbox: Sandbox, tmp_path) -> None:
    messages = [
        schema_message("orders", {"a b": {"type": "string"}, "a_b": {"type": "string"}})
    ]

    run = run_target(target_config(sandbox), messages, tmp_path)

    assert run.returncode != 0
    assert "'a b'" in run.stderr
    assert "'a_b'" in run.stderr


def _upload(sequence: int, first: int) -> Upload:
    return Upload(sequence=sequence, stream="s", first_position=first)


def test_checkpoints_hold_until_all_earlier_accepted() -> None:
    written: list[dict] = []
    checkpoints = StateCheckpoints(write=written.append)
    stream_a, stream_b = _upload(1, first=2), _upload(2, first=3)
    checkpoints.hold(stream_a)
    checkpoints.hold(stream_b)
    checkpoints.add_state(4, {"s": 1})

    checkpoints.release(stream_b)
    assert written == []

    checkpoints.release(stream_a)
    assert written == [{"s": 1}]


def test_checkpoints_emit_latest_ready_once() -> None:
    written: list[dict] = []
    checkpoints = StateCheckpoints(write=written.append)
    later = _upload(1, first=10)
    checkpoints.hold(later)
    checkpoints.add_state(3, {"s": 1})
    checkpoints.add_state(5, {"s": 2})
    checkpoints.add_state(5, {"s": 2})
    checkpoints.add_state(12, {"s": 3})

    assert written == [{"s": 1}, {"s": 2}]
    assert checkpoints.pending_count == 1
