"""Unit tests of reading and classifying Stream API responses."""

from __future__ import annotations

import typing as t

import pytest

from target_customergauge_stream.responses import (
    UNREADABLE,
    Outcome,
    ResponseBody,
    classify,
    describe_failure,
    read_response_body,
)

if t.TYPE_CHECKING:
    from pathlib import Path

SUCCESS = ResponseBody(success=True)
SECRET = "cg-example-key-5d41402abc4b2a76"


# Reading JSON bodies


def test_json_success_read() -> None:
    assert read_response_body(b'{"Data": true}', "json") == SUCCESS


def test_json_error_read() -> None:
    body = b'{"Error": {"Message": "Invalid record", "Code": 300004}}'

    assert read_response_body(body, "json") == ResponseBody(
        error_code=300004, error_message="Invalid record"
    )


def test_json_error_code_as_string() -> None:
    body = b'{"Error": {"Message": "Already processed", "Code": "400103"}}'

    assert read_response_body(body, "json").error_code == 400103


@pytest.mark.parametrize(
    "body",
    [
        b"<html>Bad Gateway</html>",
        b"",
        b"[1, 2]",
        b'{"Data": false}',
        b'{"Status": "ok"}',
        b"\xff\xfe",
    ],
    ids=["garbage", "empty", "list", "data-false", "other-object", "not-utf8"],
)
def test_json_unreadable(body: bytes) -> None:
    assert read_response_body(body, "json") == UNREADABLE


# Reading XML bodies


def test_xml_success_read() -> None:
    assert read_response_body(b"<Data>true</Data>", "xml") == SUCCESS


def test_xml_success_inside_root() -> None:
    body = b"<?xml version='1.0'?><Response><Data>true</Data></Response>"

    assert read_response_body(body, "xml") == SUCCESS


def test_xml_error_read() -> None:
    body = b"<Error><Message>Invalid API Key</Message><Code>200000</Code></Error>"

    assert read_response_body(body, "xml") == ResponseBody(
        error_code=200000, error_message="Invalid API Key"
    )


@pytest.mark.parametrize(
    "body",
    [b"Bad Gateway", b"", b"<Data>false</Data>", b"<Other/>", b"<Data>true"],
    ids=["garbage", "empty", "data-false", "other-root", "unclosed"],
)
def test_xml_unreadable(body: bytes) -> None:
    assert read_response_body(body, "xml") == UNREADABLE


def test_xml_external_entity_not_resolved(tmp_path: Path) -> None:
    entity_file = tmp_path / "entity.txt"
    entity_file.write_text("entity-file-contents", encoding="utf-8")
    body = (
        '<?xml version="1.0"?>'
        f'<!DOCTYPE Error [<!ENTITY ext SYSTEM "{entity_file.as_uri()}">]>'
        "<Error><Message>Bad &ext; input</Message><Code>300004</Code></Error>"
    ).encode()

    result = read_response_body(body, "xml")

    assert result.error_code == 300004
    assert "entity-file-contents" not in (result.error_message or "")


# Classifying


@pytest.mark.parametrize("status", [200, 201, 204])
def test_success_body_accepted(status: int) -> None:
    assert classify(status, SUCCESS) is Outcome.ACCEPTED


def test_error_body_with_200_fatal() -> None:
    body = ResponseBody(error_code=300004, error_message="Invalid record")

    assert classify(200, body) is Outcome.FATAL


@pytest.mark.parametrize("status", [200, 400, 409, 500])
def test_already_processed_accepted(status: int) -> None:
    body = ResponseBody(error_code=400103, error_message="Already processed")

    assert classify(status, body) is Outcome.ALREADY_ACCEPTED


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_status_retryable(status: int) -> None:
    assert classify(status, UNREADABLE) is Outcome.RETRYABLE


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_error_body_retryable(status: int) -> None:
    body = ResponseBody(error_code=500000, error_message="Try again later")

    assert classify(status, body) is Outcome.RETRYABLE


@pytest.mark.parametrize("status", [400, 401, 403, 404, 501])
def test_other_status_fatal(status: int) -> None:
    assert classify(status, UNREADABLE) is Outcome.FATAL


def test_unauthorized_error_body_fatal() -> None:
    body = ResponseBody(error_code=200000, error_message="Invalid API Key")

    assert classify(401, body) is Outcome.FATAL


@pytest.mark.parametrize("status", [200, 202])
def test_unreadable_2xx_fatal(status: int) -> None:
    assert classify(status, UNREADABLE) is Outcome.FATAL


# Describing failures


def test_failure_names_code_and_message() -> None:
    body = ResponseBody(error_code=300004, error_message="Invalid record")

    text = describe_failure(400, body, b"")

    assert "HTTP 400" in text
    assert "300004" in text
    assert "Invalid record" in text


def test_unauthorized_mentions_api_key() -> None:
    text = describe_failure(401, UNREADABLE, b"Unauthorized")

    assert "HTTP 401" in text
    assert "'api_key'" in text


def test_invalid_key_code_mentions_api_key() -> None:
    body = ResponseBody(error_code=200000, error_message="Invalid API Key")

    text = describe_failure(200, body, b"")

    assert "'api_key'" in text
    assert "200000" in text
    assert "Invalid API Key" in text


def test_unreadable_body_truncated() -> None:
    text = describe_failure(502, UNREADABLE, b"x" * 600)

    assert "'" + "x" * 500 + "...'" in text
    assert "x" * 501 not in text


def test_short_unreadable_body_quoted() -> None:
    text = describe_failure(502, UNREADABLE, b"Bad Gateway")

    assert "'Bad Gateway'" in text
    assert "..." not in text


def test_echoed_secret_removed_from_message() -> None:
    body = ResponseBody(error_code=300001, error_message=f"Key {SECRET} is disabled")

    text = describe_failure(403, body, b"", secrets=[SECRET])

    assert SECRET not in text
    assert "[redacted]" in text


def test_echoed_secret_removed_on_401() -> None:
    body = ResponseBody(error_code=200000, error_message=f"Invalid API Key {SECRET}")

    text = describe_failure(401, body, b"", secrets=[SECRET])

    assert SECRET not in text
    assert "[redacted]" in text


def test_echoed_secret_removed_from_body() -> None:
    raw_body = f"<html>Rejected key {SECRET}</html>".encode()

    text = describe_failure(502, UNREADABLE, raw_body, secrets=[SECRET])

    assert SECRET not in text
    assert "[redacted]" in text


def test_echoed_secret_removed_before_truncation() -> None:
    raw_body = ("y" * 490 + SECRET).encode()

    text = describe_failure(502, UNREADABLE, raw_body, secrets=[SECRET])

    assert SECRET[:10] not in text


def test_readable_body_without_error() -> None:
    text = describe_failure(500, SUCCESS, b'{"Data": true}')

    assert "HTTP 500" in text
    assert "without confirming the upload" in text
