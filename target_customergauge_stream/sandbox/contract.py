"""What the sandbox checks and answers, following the public Stream API contract."""

from __future__ import annotations

import json
import typing as t

from lxml import etree

from target_customergauge_stream.safe_xml import safe_parser

API_PATH = "/v4.1/stream/transactional"
TOKEN_PATH = "/oauth2/token"  # noqa: S105
MAX_BODY_BYTES = 2_000_000
MAX_RECORDS = 2000

# Error codes from CustomerGauge's "API 4.1 error codes" page.
INVALID_API_KEY = 200000
TOO_MANY_PARAMS = 300000
INVALID_ARGUMENTS = 300001
REQUIRED_FIELD_MISSING = 300004
FAILED_TO_INSERT = 400003
ALREADY_PROCESSED = 400103


class RejectedUpload(Exception):
    """An upload that the sandbox answers with an error body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def check_upload(body: bytes, required_fields: t.Sequence[str] = ()) -> int:
    """Check an upload body the way the Stream API does; return its record count.

    The checks run inside lxml (parsing, counting, XPath), so that the
    sandbox answers quickly even for 2,000-record uploads.

    Raises:
        RejectedUpload: If the body breaks the contract.
    """
    if not body.strip():
        raise RejectedUpload(400, REQUIRED_FIELD_MISSING, "No data provided")
    if len(body) > MAX_BODY_BYTES:
        raise RejectedUpload(
            400,
            TOO_MANY_PARAMS,
            f"Upload is {len(body)} bytes; at most {MAX_BODY_BYTES} bytes are allowed",
        )
    try:
        root = etree.fromstring(body, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        raise RejectedUpload(400, INVALID_ARGUMENTS, f"Invalid XML: {exc}") from None
    if root.tag != "records":
        raise RejectedUpload(400, INVALID_ARGUMENTS, "Root element must be <records>")
    stranger = next((child for child in root if child.tag != "record"), None)
    if stranger is not None:
        raise RejectedUpload(
            400,
            INVALID_ARGUMENTS,
            f"Unexpected element <{stranger.tag}> in <records>",
        )
    count = len(root)
    if count == 0:
        raise RejectedUpload(400, REQUIRED_FIELD_MISSING, "No data provided")
    if count > MAX_RECORDS:
        raise RejectedUpload(
            400,
            TOO_MANY_PARAMS,
            f"Upload has {count} records; at most {MAX_RECORDS} are allowed",
        )
    for name in required_fields:
        missing = t.cast(
            "float", root.xpath(f"count(record[not({name}) or {name} = ''])")
        )
        if missing:
            raise RejectedUpload(
                400,
                REQUIRED_FIELD_MISSING,
                f"Required field '{name}' not supplied in {int(missing)} records",
            )
    return count


def read_records(body: bytes) -> list[dict[str, str]]:
    """Parse an accepted body into records: element name to text, in order."""
    root = etree.fromstring(body, parser=safe_parser())
    return [{str(child.tag): child.text or "" for child in record} for record in root]


def parse_upload(
    body: bytes, required_fields: t.Sequence[str] = ()
) -> list[dict[str, str]]:
    """Check an upload body and return its records.

    Raises:
        RejectedUpload: If the body breaks the contract.
    """
    check_upload(body, required_fields)
    return read_records(body)


def render(document: dict[str, t.Any], response_format: str) -> bytes:
    """Write a response document as JSON, or as XML elements for '.xml'."""
    if response_format == "xml":
        ((name, content),) = document.items()
        root = etree.Element(name)
        if isinstance(content, dict):
            for key, value in content.items():
                etree.SubElement(root, key).text = str(value)
        else:
            root.text = "true" if content is True else str(content)
        return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    return json.dumps(document).encode()


def error_document(code: int, message: str) -> dict[str, t.Any]:
    """Build the documented error shape."""
    return {"Error": {"Message": message, "Code": code}}
