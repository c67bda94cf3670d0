"""A local stand-in for CustomerGauge's Stream API, for demos and tests.

It follows the public contract of `POST /v4.1/stream/transactional.{json,xml}`:
`Authorization: api_key <KEY>`, an XML body of `<records><record>...`, at
most 2,000,000 bytes and 2,000 records per upload, `{"Data": true}` on
success and `{"Error": {"Message": ..., "Code": ...}}` on failure (or the same
as XML). It listens on loopback only and keeps every accepted upload, raw
body and parsed records, in a folder and in memory.

Inspection endpoints, all GET, JSON unless noted:
`/sandbox/uploads` (list), `/sandbox/uploads/<n>` (records of one upload),
`/sandbox/uploads/<n>/body` (raw XML), `/sandbox/records` (every accepted
record in order), `/sandbox/summary` (counts). `DELETE /sandbox/uploads`
forgets everything.
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import json
import logging
import os
import socket
import sys
import threading
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from target_customergauge_stream.settings import is_loopback_host

LOGGER = logging.getLogger("customergauge-stream-sandbox")

API_PATH = "/v4.1/stream/transactional"
MAX_BODY_BYTES = 2_000_000
MAX_RECORDS = 2000
API_KEY_ENV = "CUSTOMERGAUGE_SANDBOX_API_KEY"

# Error codes from CustomerGauge's "API 4.1 error codes" page.
INVALID_API_KEY = 200000
TOO_MANY_PARAMS = 300000
INVALID_ARGUMENTS = 300001
REQUIRED_FIELD_MISSING = 300004

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)


class RejectedUpload(Exception):
    """An upload that the sandbox answers with an error body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class StoredUpload:
    """One accepted upload.

    Attributes:
        number: Position among accepted uploads, from 1.
        received_at: UTC time of acceptance, ISO 8601.
        size: Body size in bytes.
        records: Parsed records: element name to text, in document order.
        body: The raw request body.
    """

    number: int
    received_at: str
    size: int
    records: list[dict[str, str]]
    body: bytes = field(repr=False)

    def summary(self) -> dict[str, t.Any]:
        """Describe the upload without its records."""
        return {
            "number": self.number,
            "received_at": self.received_at,
            "bytes": self.size,
            "records": len(self.records),
        }


def parse_upload(
    body: bytes, required_fields: t.Sequence[str] = ()
) -> list[dict[str, str]]:
    """Parse and check an upload body the way the Stream API does.

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
        root = etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise RejectedUpload(400, INVALID_ARGUMENTS, f"Invalid XML: {exc}") from None
    if root.tag != "records":
        raise RejectedUpload(400, INVALID_ARGUMENTS, "Root element must be <records>")
    records: list[dict[str, str]] = []
    for element in root:
        if element.tag != "record":
            raise RejectedUpload(
                400,
                INVALID_ARGUMENTS,
                f"Unexpected element <{element.tag}> in <records>",
            )
        records.append({str(child.tag): child.text or "" for child in element})
    if not records:
        raise RejectedUpload(400, REQUIRED_FIELD_MISSING, "No data provided")
    if len(records) > MAX_RECORDS:
        raise RejectedUpload(
            400,
            TOO_MANY_PARAMS,
            f"Upload has {len(records)} records; at most {MAX_RECORDS} are allowed",
        )
    for index, record in enumerate(records, start=1):
        for name in required_fields:
            if not record.get(name):
                raise RejectedUpload(
                    400,
                    REQUIRED_FIELD_MISSING,
                    f"Required field '{name}' not supplied in record {index}",
                )
    return records


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


# Answers that a response script can ask for, by name: HTTP status, error code
# and message. "ok" means the normal handling of the request.
SCRIPTED_ANSWERS: dict[str, tuple[int, int, str]] = {
    "401": (401, INVALID_API_KEY, "Invalid API Key"),
    "400": (400, REQUIRED_FIELD_MISSING, "Required field not supplied"),
    "429": (429, 429, "Too many requests"),
    "500": (500, 500, "Internal server error"),
    "502": (502, 502, "Bad gateway"),
    "503": (503, 503, "Service unavailable"),
    "504": (504, 504, "Gateway timeout"),
    "error-200": (200, 400003, "Failed to insert record"),
    "already-processed": (400, 400103, "This upload has already been processed"),
}


def parse_script(text: str) -> list[str]:
    """Read a comma-separated response script such as 'ok,500,ok,401'.

    Raises:
        ValueError: If a step is not 'ok' or a name in `SCRIPTED_ANSWERS`.
    """
    steps = [step.strip() for step in text.split(",") if step.strip()]
    for step in steps:
        if step != "ok" and step not in SCRIPTED_ANSWERS:
            allowed = ", ".join(["ok", *SCRIPTED_ANSWERS])
            msg = f"Unknown response script step {step!r}; use one of {allowed}."
            raise ValueError(msg)
    return steps


class SandboxState:
    """Accepted uploads, kept in memory and, when a folder is given, on disk.

    Attributes:
        script: Answers for the next upload requests, used up one per request;
            once empty, every request is handled normally.
    """

    def __init__(
        self, store_dir: Path | None = None, script: t.Sequence[str] = ()
    ) -> None:
        self.store_dir = store_dir
        self.uploads: list[StoredUpload] = []
        self.requests_seen = 0
        self.script = list(script)
        self.lock = threading.Lock()
        if store_dir is not None:
            store_dir.mkdir(parents=True, exist_ok=True)

    def accept(self, body: bytes, records: list[dict[str, str]]) -> StoredUpload:
        """Store one accepted upload and return it."""
        with self.lock:
            upload = StoredUpload(
                number=len(self.uploads) + 1,
                received_at=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                size=len(body),
                records=records,
                body=body,
            )
            self.uploads.append(upload)
            if self.store_dir is not None:
                stem = self.store_dir / f"upload-{upload.number:06d}"
                stem.with_suffix(".xml").write_bytes(body)
                document = {**upload.summary(), "records": records}
                stem.with_suffix(".json").write_text(
                    json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8"
                )
            return upload

    def reset(self) -> None:
        """Forget every upload (files on disk stay)."""
        with self.lock:
            self.uploads.clear()
            self.requests_seen = 0

    def summary(self) -> dict[str, t.Any]:
        """Count uploads, records and bytes accepted so far."""
        with self.lock:
            return {
                "uploads": len(self.uploads),
                "records": sum(len(upload.records) for upload in self.uploads),
                "bytes": sum(upload.size for upload in self.uploads),
                "requests": self.requests_seen,
            }


class SandboxHandler(http.server.BaseHTTPRequestHandler):
    """Request handler; the server object carries the sandbox's state."""

    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Send the server's access log to DEBUG instead of standard error."""
        LOGGER.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, document: t.Any) -> None:  # noqa: ANN401
        self._send(
            status,
            json.dumps(document, ensure_ascii=False).encode(),
            "application/json",
        )

    def do_POST(self) -> None:
        """Handle an upload."""
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path not in {f"{API_PATH}.json", f"{API_PATH}.xml"}:
            self._send_json(404, {"Error": {"Message": "Not found", "Code": 404}})
            return
        response_format = path.rsplit(".", 1)[1]
        content_type = f"application/{response_format}"
        state = self.server.state
        with state.lock:
            state.requests_seen += 1
            step = state.script.pop(0) if state.script else "ok"
        try:
            if step != "ok":
                raise RejectedUpload(*SCRIPTED_ANSWERS[step])
            self._check_authorization()
            records = parse_upload(body, self.server.required_fields)
        except RejectedUpload as rejected:
            LOGGER.info(
                "Rejected upload: HTTP %d, code %d.", rejected.status, rejected.code
            )
            document = {"Error": {"Message": rejected.message, "Code": rejected.code}}
            self._send(rejected.status, render(document, response_format), content_type)
            return
        upload = state.accept(body, records)
        LOGGER.info(
            "Accepted upload %d: %d records, %d bytes.",
            upload.number,
            len(records),
            len(body),
        )
        self._send(200, render({"Data": True}, response_format), content_type)

    def _check_authorization(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "api_key" or credential != self.server.api_key:
            raise RejectedUpload(401, INVALID_API_KEY, "Invalid API Key")

    def do_GET(self) -> None:
        """Serve the inspection endpoints."""
        state = self.server.state
        parts = [part for part in self.path.split("?", 1)[0].split("/") if part]
        if parts == ["sandbox", "summary"]:
            self._send_json(200, state.summary())
        elif parts == ["sandbox", "uploads"]:
            with state.lock:
                self._send_json(200, [upload.summary() for upload in state.uploads])
        elif parts == ["sandbox", "records"]:
            with state.lock:
                records = [
                    record for upload in state.uploads for record in upload.records
                ]
            self._send_json(200, records)
        elif (
            len(parts) in {3, 4}
            and parts[:2] == ["sandbox", "uploads"]
            and parts[2].isdigit()
        ):
            self._send_upload(
                int(parts[2]), body_only=len(parts) == 4 and parts[3] == "body"
            )
        else:
            self._send_json(404, {"Error": {"Message": "Not found", "Code": 404}})

    def _send_upload(self, number: int, *, body_only: bool) -> None:
        state = self.server.state
        with state.lock:
            upload = (
                state.uploads[number - 1] if 0 < number <= len(state.uploads) else None
            )
        if upload is None:
            self._send_json(
                404, {"Error": {"Message": f"No upload {number}", "Code": 404}}
            )
        elif body_only:
            self._send(200, upload.body, "application/xml")
        else:
            self._send_json(200, {**upload.summary(), "records": upload.records})

    def do_DELETE(self) -> None:
        """Forget every upload."""
        if self.path.split("?", 1)[0].rstrip("/") == "/sandbox/uploads":
            self.server.state.reset()
            self._send_json(200, {"Data": True})
        else:
            self._send_json(404, {"Error": {"Message": "Not found", "Code": 404}})


class SandboxHTTPServer(http.server.ThreadingHTTPServer):
    """HTTP server that holds the sandbox's settings and state."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        api_key: str,
        state: SandboxState,
        required_fields: t.Sequence[str] = (),
    ) -> None:
        if not is_loopback_host(address[0]):
            msg = f"The sandbox listens on loopback only, not on {address[0]!r}."
            raise ValueError(msg)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SandboxHandler)
        self.api_key = api_key
        self.state = state
        self.required_fields = tuple(required_fields)


class Sandbox:
    """A sandbox server running on a background thread, for tests and scripts."""

    def __init__(
        self,
        *,
        api_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        store_dir: Path | None = None,
        required_fields: t.Sequence[str] = (),
        script: t.Sequence[str] = (),
    ) -> None:
        self.state = SandboxState(store_dir, script)
        self.server = SandboxHTTPServer(
            (host, port),
            api_key=api_key,
            state=self.state,
            required_fields=required_fields,
        )
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """URL of the server root, such as http://127.0.0.1:8765."""
        host, port = self.server.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        host_text = f"[{host}]" if ":" in host else host
        return f"http://{host_text}:{port}"

    def endpoint_url(self, response_format: str = "json") -> str:
        """Return the Stream API URL to put in the target's 'api_url'."""
        return f"{self.base_url}{API_PATH}.{response_format}"

    def start(self) -> Sandbox:
        """Start serving on a background thread."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="customergauge-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def records(self) -> list[dict[str, str]]:
        """Return every accepted record, in the order uploads arrived."""
        with self.state.lock:
            return [
                record for upload in self.state.uploads for record in upload.records
            ]

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _read_store(store_dir: Path) -> list[dict[str, t.Any]]:
    documents = []
    for path in sorted(store_dir.glob("upload-*.json")):
        documents.append(json.loads(path.read_text(encoding="utf-8")))
    return documents


def _print_summary(store_dir: Path) -> int:
    documents = _read_store(store_dir)
    if not documents:
        print(f"No uploads stored in {store_dir}.")
        return 0
    for document in documents:
        print(
            f"upload {document['number']:>4}: {len(document['records']):>5} records, "
            f"{document['bytes']:>9,} bytes, received {document['received_at']}"
        )
    total_records = sum(len(document["records"]) for document in documents)
    emails = [
        record.get("Email") for document in documents for record in document["records"]
    ]
    distinct = len({email for email in emails if email})
    print(
        f"{len(documents)} uploads, {total_records} records, "
        f"{sum(document['bytes'] for document in documents):,} bytes; "
        f"{distinct} distinct Email values."
    )
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the sandbox command line: `serve` or `summary`."""
    parser = argparse.ArgumentParser(
        prog="customergauge-stream-sandbox",
        description="Local stand-in for CustomerGauge's Stream API, on loopback only.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="Serve the Stream API until stopped.")
    serve.add_argument(
        "--host", default="127.0.0.1", help="Loopback address to listen on."
    )
    serve.add_argument(
        "--port", type=int, default=8765, help="TCP port; 0 picks a free one."
    )
    serve.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"API key that uploads must carry (default: ${API_KEY_ENV}).",
    )
    serve.add_argument(
        "--store-dir",
        type=Path,
        default=Path("sandbox-uploads"),
        help="Folder that receives each accepted upload as .xml and .json files.",
    )
    serve.add_argument(
        "--required-field",
        action="append",
        default=[],
        metavar="NAME",
        help="Field every record must carry, such as Email; repeat for more.",
    )
    serve.add_argument(
        "--script",
        type=parse_script,
        default=[],
        metavar="STEPS",
        help=(
            "Comma-separated answers for the first upload requests, such as "
            "'ok,503,ok,401'; later requests are handled normally. Steps: ok, "
            + ", ".join(SCRIPTED_ANSWERS)
            + "."
        ),
    )
    summary = commands.add_parser(
        "summary", help="List the uploads stored in a folder."
    )
    summary.add_argument("--store-dir", type=Path, default=Path("sandbox-uploads"))
    arguments = parser.parse_args(argv)

    if arguments.command == "summary":
        return _print_summary(arguments.store_dir)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    if not arguments.api_key:
        parser.error(f"--api-key is missing; pass it or set ${API_KEY_ENV}.")
    try:
        sandbox = Sandbox(
            api_key=arguments.api_key,
            host=arguments.host,
            port=arguments.port,
            store_dir=arguments.store_dir,
            required_fields=arguments.required_field,
            script=arguments.script,
        )
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    LOGGER.info(
        "Serving the Stream API at %s, storing uploads in %s.",
        sandbox.endpoint_url(),
        arguments.store_dir,
    )
    sys.stdout.flush()
    try:
        sandbox.server.serve_forever()
    except KeyboardInterrupt:
        LOGGER.info("Stopped.")
    finally:
        sandbox.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
