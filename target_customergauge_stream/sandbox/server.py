"""The sandbox HTTP server: upload and token endpoints, storage, inspection."""

from __future__ import annotations

import datetime
import email.utils
import functools
import hashlib
import http.server
import json
import logging
import secrets
import socket
import struct
import threading
import time
import typing as t
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

from target_customergauge_stream.sandbox.contract import (
    API_PATH,
    INVALID_API_KEY,
    TOKEN_PATH,
    RejectedUpload,
    check_upload,
    error_document,
    read_records,
    render,
)
from target_customergauge_stream.sandbox.faults import ERROR_STEPS, FaultPlan
from target_customergauge_stream.settings import is_loopback_host

if t.TYPE_CHECKING:
    from pathlib import Path

LOGGER = logging.getLogger("customergauge-stream-sandbox")


@dataclass
class StoredUpload:
    """One accepted upload.

    Attributes:
        number: Position among accepted uploads, from 1.
        received_at: UTC time of acceptance, ISO 8601.
        size: Body size in bytes.
        record_count: Number of records in the body.
        body: The raw request body.
    """

    number: int
    received_at: str
    size: int
    record_count: int
    body: bytes = field(repr=False)

    @functools.cached_property
    def records(self) -> list[dict[str, str]]:
        """Parsed records: element name to text, in document order."""
        return read_records(self.body)

    def summary(self) -> dict[str, t.Any]:
        """Describe the upload without its records."""
        return {
            "number": self.number,
            "received_at": self.received_at,
            "bytes": self.size,
            "records": self.record_count,
        }


class StoreNotEmptyError(RuntimeError):
    """The store folder already contains uploads from an earlier sandbox run."""


class SandboxState:
    """Accepted uploads, kept in memory and, when a folder is given, on disk."""

    def __init__(
        self,
        store_dir: Path | None = None,
        *,
        clear: bool = False,
        records_json: bool = True,
    ) -> None:
        self.store_dir = store_dir
        self.records_json = records_json
        self.uploads: list[StoredUpload] = []
        self.requests_seen = 0
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.body_digests: set[str] = set()
        self.in_flight = 0
        self.lock = threading.Lock()
        if store_dir is not None:
            store_dir.mkdir(parents=True, exist_ok=True)
            leftovers = self._stored_files()
            if leftovers and not clear:
                msg = (
                    f"The store folder {store_dir} already holds {len(leftovers)} "
                    f"files from an earlier run. Pass --clear to delete them, or "
                    f"choose another --store-dir."
                )
                raise StoreNotEmptyError(msg)
            for path in leftovers:
                path.unlink()

    def _stored_files(self) -> list[Path]:
        if self.store_dir is None:
            return []
        return sorted(self.store_dir.glob("upload-*.xml")) + sorted(
            self.store_dir.glob("upload-*.json")
        )

    def accept(self, body: bytes, record_count: int) -> StoredUpload:
        """Store one accepted upload and return it."""
        with self.lock:
            upload = StoredUpload(
                number=len(self.uploads) + 1,
                received_at=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                size=len(body),
                record_count=record_count,
                body=body,
            )
            self.uploads.append(upload)
        if self.store_dir is not None:
            stem = self.store_dir / f"upload-{upload.number:06d}"
            stem.with_suffix(".xml").write_bytes(body)
            if self.records_json:
                document = {**upload.summary(), "records": upload.records}
                stem.with_suffix(".json").write_text(
                    json.dumps(document, ensure_ascii=False), encoding="utf-8"
                )
        return upload

    def claim_body(self, body: bytes) -> bool:
        """Note a body about to be stored; return False if it was claimed before."""
        digest = hashlib.sha256(body).hexdigest()
        with self.lock:
            if digest in self.body_digests:
                return False
            self.body_digests.add(digest)
            return True

    def duplicates(self, key_field: str) -> dict[str, int]:
        """Count values of a field that arrived in more than one record.

        Returns each such value with how many times it arrived; an empty
        result means no record arrived twice.
        """
        counts = Counter(
            record.get(key_field, "")
            for record in self.records()
            if record.get(key_field)
        )
        return {value: count for value, count in counts.items() if count > 1}

    def reset(self) -> None:
        """Forget every upload, in memory and on disk."""
        with self.lock:
            self.uploads.clear()
            self.body_digests.clear()
            self.requests_seen = 0
            for path in self._stored_files():
                path.unlink()

    def records(self) -> list[dict[str, str]]:
        """Return every accepted record, in the order uploads arrived."""
        with self.lock:
            return [record for upload in self.uploads for record in upload.records]

    def summary(self) -> dict[str, t.Any]:
        """Count uploads, records and bytes accepted so far."""
        with self.lock:
            return {
                "uploads": len(self.uploads),
                "records": sum(upload.record_count for upload in self.uploads),
                "bytes": sum(upload.size for upload in self.uploads),
                "requests": self.requests_seen,
            }


@dataclass(frozen=True)
class SandboxOptions:
    """How the sandbox behaves besides storing uploads.

    Attributes:
        api_key: API key that uploads must carry.
        client_id: OAuth2 client ID the token endpoint accepts, if any.
        client_secret: OAuth2 client secret that goes with client_id.
        token_lifetime: Seconds an issued access token stays valid.
        token_failures: How many token requests, from the first, get a 503.
        required_fields: Fields every record must carry.
        latency: Seconds added before every upload response.
        stall_seconds: How long the 'stall' steps wait.
        echo_authorization: Quote the received Authorization header in error
            bodies, to test that clients never print what a server echoes.
        reject_repeated_bodies: Answer a body identical to one accepted
            before with error 400103, "This upload has already been processed".
        key_field: Field whose repeated values `/sandbox/duplicates` reports.
    """

    api_key: str
    client_id: str | None = None
    client_secret: str | None = None
    token_lifetime: float = 3600.0
    token_failures: int = 0
    required_fields: tuple[str, ...] = ()
    latency: float = 0.0
    stall_seconds: float = 30.0
    echo_authorization: bool = False
    reject_repeated_bodies: bool = False
    key_field: str = "Email"


class SandboxHandler(http.server.BaseHTTPRequestHandler):
    """Request handler; the server object carries the sandbox's state."""

    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        """Turn off Nagle's algorithm, which delays each response by up to 40 ms."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        """Send the server's access log to DEBUG instead of standard error."""
        LOGGER.debug("%s %s", self.address_string(), format % args)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, document: t.Any) -> None:  # noqa: ANN401
        body = json.dumps(document, ensure_ascii=False).encode()
        self._send(status, body, "application/json")

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send a TCP RST.
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.close_connection = True
        self.connection.close()

    def do_POST(self) -> None:
        """Handle an upload or a token request."""
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path == TOKEN_PATH:
            self._issue_token(body)
        elif path in {f"{API_PATH}.json", f"{API_PATH}.xml"}:
            self._handle_upload(body, path.rsplit(".", 1)[1])
        else:
            self._send_json(404, error_document(404, "Not found"))

    def _handle_upload(self, body: bytes, response_format: str) -> None:
        state = self.server.state
        with state.lock:
            state.requests_seen += 1
            state.in_flight += 1
        try:
            self._answer_upload(body, response_format)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _answer_upload(self, body: bytes, response_format: str) -> None:
        options = self.server.options
        state = self.server.state
        step = self.server.faults.next_step()
        if options.latency:
            time.sleep(options.latency)
        if step in {"reset", "stall"}:
            if step == "stall":
                time.sleep(options.stall_seconds)
            LOGGER.info("Fault '%s': resetting the connection.", step)
            self._reset_connection()
            return
        content_type = f"application/{response_format}"
        if step == "garbage":
            self._send(200, b"<html><body>Upstream proxy error</body>", "text/html")
            return
        try:
            if step in ERROR_STEPS:
                raise RejectedUpload(*ERROR_STEPS[step])
            self._check_authorization()
            record_count = check_upload(body, options.required_fields)
            # The body is claimed before a stall: an upload the sandbox is
            # going to store counts as processed for a copy sent meanwhile.
            if not state.claim_body(body) and options.reject_repeated_bodies:
                raise RejectedUpload(*ERROR_STEPS["already-processed"])
        except RejectedUpload as rejected:
            self._send_rejection(rejected, step, response_format)
            return
        if step == "stall-accept":
            time.sleep(options.stall_seconds)
        upload = state.accept(body, record_count)
        LOGGER.info(
            "Accepted upload %d: %d records, %d bytes.",
            upload.number,
            record_count,
            len(body),
        )
        self._send(200, render({"Data": True}, response_format), content_type)

    def _send_rejection(
        self, rejected: RejectedUpload, step: str, response_format: str
    ) -> None:
        LOGGER.info(
            "Rejected upload: HTTP %d, code %d.", rejected.status, rejected.code
        )
        message = rejected.message
        if self.server.options.echo_authorization:
            message += f" (Authorization: {self.headers.get('Authorization', '')})"
        headers = {}
        if step == "429":
            headers["Retry-After"] = "1"
        elif step == "429-date":
            headers["Retry-After"] = email.utils.formatdate(
                time.time() + 2, usegmt=True
            )
        document = error_document(rejected.code, message)
        self._send(
            rejected.status,
            render(document, response_format),
            f"application/{response_format}",
            headers,
        )

    def _check_authorization(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        options = self.server.options
        if scheme.lower() == "api_key" and credential == options.api_key:
            return
        if scheme.lower() == "bearer":
            with self.server.state.lock:
                expires_at = self.server.state.tokens.get(credential)
            if expires_at is not None and time.monotonic() < expires_at:
                return
        raise RejectedUpload(401, INVALID_API_KEY, "Invalid API Key")

    def _issue_token(self, body: bytes) -> None:
        options = self.server.options
        with self.server.state.lock:
            self.server.state.token_requests += 1
            failing = self.server.state.token_requests <= options.token_failures
        if failing:
            self._send_json(503, {"error": "temporarily_unavailable"})
            return
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        client_id = form.get("client_id", [""])[0]
        client_secret = form.get("client_secret", [""])[0]
        if grant != "client_credentials":
            self._send_json(400, {"error": "unsupported_grant_type"})
            return
        if (
            not options.client_id
            or client_id != options.client_id
            or client_secret != options.client_secret
        ):
            self._send_json(401, {"error": "invalid_client"})
            return
        token = secrets.token_urlsafe(24)
        with self.server.state.lock:
            self.server.state.tokens[token] = time.monotonic() + options.token_lifetime
        self._send_json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(options.token_lifetime),
            },
        )

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
            self._send_json(200, state.records())
        elif parts == ["sandbox", "duplicates"]:
            key_field = self.server.options.key_field
            duplicates = state.duplicates(key_field)
            self._send_json(
                200,
                {
                    "key_field": key_field,
                    "duplicated": len(duplicates),
                    "values": duplicates,
                },
            )
        elif (
            len(parts) in {3, 4}
            and parts[:2] == ["sandbox", "uploads"]
            and parts[2].isdigit()
        ):
            body_only = len(parts) == 4 and parts[3] == "body"
            self._send_upload(int(parts[2]), body_only=body_only)
        else:
            self._send_json(404, error_document(404, "Not found"))

    def _send_upload(self, number: int, *, body_only: bool) -> None:
        state = self.server.state
        with state.lock:
            count = len(state.uploads)
            upload = state.uploads[number - 1] if 0 < number <= count else None
        if upload is None:
            self._send_json(404, error_document(404, f"No upload {number}"))
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
            self._send_json(404, error_document(404, "Not found"))


class SandboxHTTPServer(http.server.ThreadingHTTPServer):
    """HTTP server that carries the sandbox's options, faults and state."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        options: SandboxOptions,
        state: SandboxState,
        faults: FaultPlan,
    ) -> None:
        if not is_loopback_host(address[0]):
            msg = f"The sandbox listens on loopback only, not on {address[0]!r}."
            raise ValueError(msg)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SandboxHandler)
        self.options = options
        self.state = state
        self.faults = faults

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:  # noqa: ANN401
        """Log a broken connection briefly; injected faults cause many."""
        LOGGER.debug("Connection from %s ended with an error.", client_address)


class Sandbox:
    """A sandbox server running on a background thread, for tests and scripts."""

    def __init__(
        self,
        *,
        api_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        store_dir: Path | None = None,
        clear: bool = False,
        records_json: bool = True,
        required_fields: t.Sequence[str] = (),
        script: t.Sequence[str] = (),
        fault_rate: float = 0.0,
        faults: t.Sequence[str] = (),
        seed: int | None = None,
        latency: float = 0.0,
        stall_seconds: float = 30.0,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_lifetime: float = 3600.0,
        token_failures: int = 0,
        echo_authorization: bool = False,
        reject_repeated_bodies: bool = False,
        key_field: str = "Email",
    ) -> None:
        self.state = SandboxState(store_dir, clear=clear, records_json=records_json)
        self.faults = FaultPlan(script, fault_rate=fault_rate, faults=faults, seed=seed)
        self.options = SandboxOptions(
            api_key=api_key,
            client_id=client_id,
            client_secret=client_secret,
            token_lifetime=token_lifetime,
            token_failures=token_failures,
            required_fields=tuple(required_fields),
            latency=latency,
            stall_seconds=stall_seconds,
            echo_authorization=echo_authorization,
            reject_repeated_bodies=reject_repeated_bodies,
            key_field=key_field,
        )
        self.server = SandboxHTTPServer(
            (host, port), options=self.options, state=self.state, faults=self.faults
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

    @property
    def token_url(self) -> str:
        """Return the OAuth2 token URL to put in the target's 'token_url'."""
        return f"{self.base_url}{TOKEN_PATH}"

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far."""
        with self.state.lock:
            self.state.tokens.clear()

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
        return self.state.records()

    def wait_until_idle(self, seconds: float) -> bool:
        """Wait, at most `seconds`, until no upload request is being handled."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.state.lock:
                if self.state.in_flight == 0:
                    return True
            time.sleep(0.02)
        return False

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
