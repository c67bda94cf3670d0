"""Send upload bodies to the Stream API, with authentication and retries."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
import typing as t
from dataclasses import dataclass

import requests
import urllib3

from target_customergauge_stream import __version__
from target_customergauge_stream.auth import (
    ApiKeyAuth,
    AuthenticationError,
    Authenticator,
    OAuth2ClientCredentials,
)
from target_customergauge_stream.responses import (
    Outcome,
    classify,
    describe_failure,
    read_response_body,
    redact,
)

if t.TYPE_CHECKING:
    from target_customergauge_stream.settings import Settings

LOGGER = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 30.0


class UploadFailedError(RuntimeError):
    """An upload was not accepted and will not be retried.

    Attributes:
        ambiguous: An attempt may have reached CustomerGauge after all (a
            timeout after the body was sent, a connection dropped mid-response).
    """

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


@dataclass(frozen=True)
class DeliveryReport:
    """Outcome of one upload.

    Attributes:
        outcome: Accepted or already accepted; failures raise instead.
        status: HTTP status of the last response.
        attempts: Number of POST requests made.
        seconds: Time from the first request to the last response.
    """

    outcome: Outcome
    status: int
    attempts: int
    seconds: float


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Read a Retry-After header as seconds to wait.

    Accepts both forms of RFC 9110: a number of seconds, or an HTTP date.
    Returns None when the header is missing or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def build_authenticator(settings: Settings, session: requests.Session) -> Authenticator:
    """Pick the API key or OAuth2, whichever the settings configure."""
    if settings.uses_oauth2:
        return OAuth2ClientCredentials(
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            session=session,
            timeout=min(CONNECT_TIMEOUT_SECONDS, settings.request_timeout),
            verify=settings.ca_bundle or True,
        )
    return ApiKeyAuth(settings.api_key)


class StreamApiClient:
    """POST upload bodies to one Stream API endpoint, one at a time.

    Every attempt of an upload sends the byte-identical body. Retries are
    bounded by `max_retries` and by `upload_deadline`, and consecutive
    uploads are at least `min_upload_interval` seconds apart.
    """

    def __init__(self, settings: Settings, *, halt_on_ambiguous: bool = False) -> None:
        self.settings = settings
        # With the delivery ledger and 'in_doubt: halt', an attempt that may
        # have arrived is not retried blindly.
        self.halt_on_ambiguous = halt_on_ambiguous
        # Whether the last attempt's failure came after the body may have
        # been sent; set by `_attempt`.
        self._last_sent = False
        # Set when the target is stopping: no new attempt starts, and a wait
        # between attempts ends early.
        self.stop_requested = threading.Event()
        self._session = requests.Session()
        self._session.headers.update(
            {
                "Content-Type": "application/xml; charset=utf-8",
                "Accept": f"application/{settings.response_format}",
                "User-Agent": f"target-customergauge-stream/{__version__}",
            }
        )
        # TLS certificates are always verified: ca_bundle replaces the default
        # certificate authorities, it never turns verification off.
        self._verify: str | bool = settings.ca_bundle or True
        self.auth = build_authenticator(settings, self._session)
        self._last_finished: float | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or error."""
        return self.auth.secrets

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            MAX_BACKOFF_SECONDS,
            self.settings.retry_backoff_seconds * 2 ** (attempt - 1),
        )
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret

    def _pace(self) -> None:
        interval = self.settings.min_upload_interval
        if self._last_finished is None or interval <= 0:
            return
        remaining = self._last_finished + interval - time.monotonic()
        if remaining > 0:
            LOGGER.debug("Waiting %.1f s before the next upload.", remaining)
            self.stop_requested.wait(remaining)

    def send(self, body: bytes, label: str) -> DeliveryReport:
        """POST one body until it is accepted, a fatal answer comes, or retries end.

        Args:
            body: The complete XML document.
            label: Words that identify the upload in log lines and errors.

        Returns:
            The upload's outcome.

        Raises:
            UploadFailedError: If the upload was not accepted.
        """
        self._pace()
        try:
            return self._send_with_retries(body, label)
        finally:
            self._last_finished = time.monotonic()

    def _send_with_retries(self, body: bytes, label: str) -> DeliveryReport:
        started = time.monotonic()
        deadline = started + self.settings.upload_deadline
        attempts_allowed = self.settings.max_retries + 1
        renewed_token = False
        # Once an attempt may have arrived, the upload stays in doubt until
        # CustomerGauge accepts it or says it already processed it.
        in_doubt = False
        attempt = 0
        while True:
            attempt += 1
            status, problem, retry_after = self._attempt(body)
            if problem is None:
                return DeliveryReport(
                    Outcome.ACCEPTED, status, attempt, time.monotonic() - started
                )
            outcome, reason = problem
            if outcome is Outcome.ALREADY_ACCEPTED:
                LOGGER.info(
                    "%s: CustomerGauge had already processed it (%s).", label, reason
                )
                return DeliveryReport(
                    outcome, status, attempt, time.monotonic() - started
                )
            if status == 401 and not renewed_token and self.auth.renew():
                # An OAuth2 token can be revoked before its expiry: fetch a
                # new one once before giving up.
                renewed_token = True
                LOGGER.warning("%s: HTTP 401; renewing the OAuth2 token.", label)
                attempt -= 1
                continue
            ambiguous = outcome is Outcome.RETRYABLE and status == 0 and self._last_sent
            in_doubt = in_doubt or ambiguous
            if ambiguous and self.halt_on_ambiguous:
                raise UploadFailedError(
                    f"{label} is in doubt: {reason} after the body was sent, so "
                    f"CustomerGauge may have received it. With 'in_doubt: halt' the "
                    f"target does not send it again blindly: check whether the "
                    f"records arrived, then resolve the upload with "
                    f"'target-customergauge-stream-ledger resolve', or set "
                    f"'in_doubt: resend' to send the same body again.",
                    ambiguous=True,
                )
            if outcome is Outcome.FATAL:
                raise UploadFailedError(f"{label} failed: {reason}", ambiguous=in_doubt)
            if attempt >= attempts_allowed:
                raise UploadFailedError(
                    f"{label} failed after {attempt} attempts: {reason}. Re-run "
                    f"the sync from its last STATE once CustomerGauge is reachable.",
                    ambiguous=in_doubt,
                )
            wait = self._backoff(attempt)
            if retry_after is not None:
                if retry_after > self.settings.max_retry_wait:
                    raise UploadFailedError(
                        f"{label} failed: {reason}, and CustomerGauge asked to "
                        f"wait {retry_after:.0f} s, longer than 'max_retry_wait' "
                        f"({self.settings.max_retry_wait:g} s).",
                        ambiguous=in_doubt,
                    )
                wait = retry_after
            if time.monotonic() + wait > deadline:
                raise UploadFailedError(
                    f"{label} failed: {reason}, and another attempt would end "
                    f"after 'upload_deadline' ({self.settings.upload_deadline:g} s).",
                    ambiguous=in_doubt,
                )
            stopping = (
                f"{label} failed: {reason}, and was not retried because the "
                f"target is stopping."
            )
            if self.stop_requested.is_set():
                raise UploadFailedError(stopping, ambiguous=in_doubt)
            LOGGER.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.1f s.",
                label,
                attempt,
                attempts_allowed,
                reason,
                wait,
            )
            if self.stop_requested.wait(wait):
                raise UploadFailedError(stopping, ambiguous=in_doubt)

    def _attempt(  # noqa: PLR0911 - one return per kind of outcome
        self, body: bytes
    ) -> tuple[int, tuple[Outcome, str] | None, float | None]:
        """Make one POST; return the status, the problem if any, and Retry-After."""
        self._last_sent = False
        try:
            authorization = self.auth.header()
        except AuthenticationError as exc:
            outcome = Outcome.RETRYABLE if exc.retryable else Outcome.FATAL
            return 0, (outcome, redact(str(exc), self.secrets)), None
        try:
            response = self._session.post(
                self.settings.endpoint_url,
                data=body,
                headers={"Authorization": authorization},
                timeout=(
                    min(CONNECT_TIMEOUT_SECONDS, self.settings.request_timeout),
                    self.settings.request_timeout,
                ),
                verify=self._verify,
            )
        except requests.exceptions.SSLError:
            reason = (
                "TLS certificate verification failed. If a corporate proxy "
                "re-signs TLS traffic, set 'ca_bundle' to its CA certificates"
            )
            return 0, (Outcome.FATAL, reason), None
        except requests.Timeout as exc:
            timeout = self.settings.request_timeout
            reason = f"timed out after {timeout:g} s ({type(exc).__name__})"
            self._last_sent = not isinstance(exc, requests.exceptions.ConnectTimeout)
            return 0, (Outcome.RETRYABLE, reason), None
        except (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            reason = f"connection error: {type(exc).__name__}"
            self._last_sent = not _failed_to_connect(exc)
            return 0, (Outcome.RETRYABLE, reason), None
        except requests.RequestException as exc:
            reason = f"request failed: {type(exc).__name__}"
            return 0, (Outcome.FATAL, reason), None

        parsed = read_response_body(response.content, self.settings.response_format)
        outcome = classify(response.status_code, parsed)
        if outcome is Outcome.ACCEPTED:
            return response.status_code, None, None
        reason = describe_failure(
            response.status_code, parsed, response.content, self.secrets
        )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return response.status_code, (outcome, reason), retry_after


def _failed_to_connect(error: requests.RequestException) -> bool:
    """Tell whether a connection error happened before any byte was sent.

    requests wraps urllib3's MaxRetryError, whose reason is a
    NewConnectionError when the TCP connection itself failed (refused,
    unreachable). Anything else may have happened after the body was sent.
    """
    cause = error.args[0] if error.args else None
    reason = getattr(cause, "reason", None)
    return isinstance(reason, urllib3.exceptions.NewConnectionError)
