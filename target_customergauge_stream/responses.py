"""Read Stream API responses and decide what each one means for an upload.

Pure functions: no I/O. CustomerGauge answers `{"Data": true}` on success and
`{"Error": {"Message": "...", "Code": 300004}}` on failure, or the same
content as XML elements, and an error body can come with any HTTP status,
200 included. So the body decides, not the status alone.
"""

from __future__ import annotations

import enum
import json
import typing as t
from dataclasses import dataclass

from lxml import etree

from target_customergauge_stream.safe_xml import safe_parser

# "This upload has already been processed", seen on CustomerGauge's sibling
# File upload API. The same upload arriving twice is a success, not an error.
ALREADY_PROCESSED_CODE = 400103
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BODY_EXCERPT_CHARS = 500


class Outcome(enum.Enum):
    """Meaning of an upload's response for the records in it."""

    ACCEPTED = "accepted"
    ALREADY_ACCEPTED = "already accepted"
    RETRYABLE = "retryable"
    FATAL = "fatal"


@dataclass(frozen=True)
class ResponseBody:
    """The parts of a response body that matter.

    Attributes:
        success: The body is the documented success answer.
        error_code: CustomerGauge's error code, when the body is an error.
        error_message: CustomerGauge's error message, when the body is an error.
        readable: The body parsed as the documented JSON or XML shape.
    """

    success: bool = False
    error_code: int | None = None
    error_message: str | None = None
    readable: bool = True


UNREADABLE = ResponseBody(readable=False)


def _error_from(code: t.Any, message: t.Any) -> ResponseBody:  # noqa: ANN401
    try:
        parsed_code = int(code) if code is not None else None
    except (TypeError, ValueError):
        parsed_code = None
    return ResponseBody(
        error_code=parsed_code,
        error_message=str(message) if message is not None else None,
    )


def _read_json(body: bytes) -> ResponseBody:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return UNREADABLE
    if not isinstance(document, dict):
        return UNREADABLE
    error = document.get("Error")
    if isinstance(error, dict):
        return _error_from(error.get("Code"), error.get("Message"))
    if document.get("Data") is True:
        return ResponseBody(success=True)
    return UNREADABLE


def _read_xml(body: bytes) -> ResponseBody:
    # NOTE: CustomerGauge documents the XML error shape but not the XML success
    # shape; this accepts <Data>true</Data> as the root or as a child of it.
    try:
        root = etree.fromstring(body, parser=safe_parser())
    except etree.XMLSyntaxError:
        return UNREADABLE
    if root is None:
        return UNREADABLE
    error = root if root.tag == "Error" else root.find("Error")
    if error is not None:
        return _error_from(error.findtext("Code"), error.findtext("Message"))
    data = root if root.tag == "Data" else root.find("Data")
    if data is not None and (data.text or "").strip().lower() in {"true", "1"}:
        return ResponseBody(success=True)
    return UNREADABLE


def read_response_body(body: bytes, response_format: str) -> ResponseBody:
    """Parse a response body in the format the endpoint URL asked for."""
    if response_format == "xml":
        return _read_xml(body)
    return _read_json(body)


def classify(status: int, body: ResponseBody) -> Outcome:
    """Decide what one response means; every upload outcome is decided here.

    | status and body                                  | outcome          |
    |--------------------------------------------------|------------------|
    | 2xx with the success body                        | accepted         |
    | any status with error code 400103                | already accepted |
    | 408, 429, 500, 502, 503, 504                     | retryable        |
    | anything else (401, other 4xx, error bodies, ...)| fatal            |
    """
    if body.error_code == ALREADY_PROCESSED_CODE:
        return Outcome.ALREADY_ACCEPTED
    if 200 <= status < 300 and body.success:
        return Outcome.ACCEPTED
    if status in RETRYABLE_STATUSES:
        return Outcome.RETRYABLE
    return Outcome.FATAL


def redact(text: str, secrets: t.Iterable[str]) -> str:
    """Replace each non-empty secret in a text with '[redacted]'."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def describe_failure(
    status: int, body: ResponseBody, raw_body: bytes, secrets: t.Iterable[str] = ()
) -> str:
    """Explain a failed response in words a person can act on.

    The text never contains a secret: any secret that the server echoed back
    is replaced before the body is quoted.
    """
    if status == 401 or body.error_code == 200000:
        detail = (
            f" ({body.error_code}: {redact(body.error_message or '', secrets)})"
            if body.error_code is not None
            else ""
        )
        return (
            f"CustomerGauge rejected the credentials with HTTP {status}{detail}. "
            f"Check 'api_key' (create a new key in the CustomerGauge account's "
            f"admin section if this one was revoked), or 'client_id' and "
            f"'client_secret' when using OAuth2."
        )
    if body.error_code is not None or body.error_message is not None:
        message = redact(body.error_message or "no message", secrets)
        return (
            f"CustomerGauge answered HTTP {status} with error {body.error_code}: "
            f"{message}"
        )
    if not body.readable:
        excerpt = redact(raw_body.decode("utf-8", "replace"), secrets)
        if len(excerpt) > BODY_EXCERPT_CHARS:
            excerpt = excerpt[:BODY_EXCERPT_CHARS] + "..."
        return (
            f"CustomerGauge answered HTTP {status} with a body that is not the "
            f"documented success or error shape: {excerpt!r}"
        )
    return f"CustomerGauge answered HTTP {status} without confirming the upload."
