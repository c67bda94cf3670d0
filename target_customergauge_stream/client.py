"""Send upload bodies to the Stream API, with authentication and retries."""

from __future__ import annotations

import email.utils
import logging
import random
import time
import typing as t
from dataclasses import dataclass

import requests

from target_customergauge_stream import __version__
from target_customergauge_stream.responses import (
    Outcome,
    classify,
    describe_failure,
    read_response_body,
)

if t.TYPE_CHECKING:
    from target_customergauge_stream.settings import Settings

LOGGER = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0
# Longest Retry-After the client waits for; a longer one fails the upload
# instead of stalling the run.
MAX_RETRY_AFTER_SECONDS = 600.0
CONNECT_TIMEOUT_SECONDS = 30.0


class UploadFailedError(RuntimeError):
    """An upload was not accepted and will not be retried."""


@dataclass(frozen=True)
class DeliveryReport:
    """How one upload ended.

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


class StreamApiClient:
    """POST upload bodies to one Stream API endpoint, one at a time.

    Every attempt of an upload sends the byte-identical body.
    """

    def __init__(
        self, settings: Settings, *, sleep: t.Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._session = requests.Session()
        self._session.headers.update(
            {
                "Authorization": f"api_key {settings.api_key}",
                "Content-Type": "application/xml; charset=utf-8",
                "Accept": f"application/{settings.response_format}",
                "User-Agent": f"target-customergauge-stream/{__version__}",
            }
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or error."""
        return (self.settings.api_key,)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            MAX_BACKOFF_SECONDS,
            self.settings.retry_backoff_seconds * 2 ** (attempt - 1),
        )
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311

    def send(self, body: bytes, label: str) -> DeliveryReport:
        """POST one body until it is accepted, a fatal answer comes, or retries end.

        Args:
            body: The complete XML document.
            label: Words that identify the upload in log lines and errors.

        Returns:
            How the upload ended.

        Raises:
            UploadFailedError: If the upload was not accepted.
        """
        started = time.monotonic()
        attempts_allowed = self.settings.max_retries + 1
        for attempt in range(1, attempts_allowed + 1):
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
            if outcome is Outcome.FATAL:
                raise UploadFailedError(f"{label} failed: {reason}")
            if attempt == attempts_allowed:
                raise UploadFailedError(
                    f"{label} failed after {attempt} attempts: {reason}. Re-run the "
                    f"sync from its last STATE once CustomerGauge is reachable."
                )
            wait = self._backoff(attempt)
            if retry_after is not None:
                if retry_after > MAX_RETRY_AFTER_SECONDS:
                    raise UploadFailedError(
                        f"{label} failed: {reason}, and CustomerGauge asked to wait "
                        f"{retry_after:.0f} s, longer than the "
                        f"{MAX_RETRY_AFTER_SECONDS:.0f} s the target waits at most."
                    )
                wait = retry_after
            LOGGER.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.1f s.",
                label,
                attempt,
                attempts_allowed,
                reason,
                wait,
            )
            self._sleep(wait)
        msg = f"{label} was not sent"  # pragma: no cover - the loop always returns
        raise UploadFailedError(msg)  # pragma: no cover

    def _attempt(
        self, body: bytes
    ) -> tuple[int, tuple[Outcome, str] | None, float | None]:
        """Make one POST; return the status, the problem if any, and Retry-After."""
        try:
            response = self._session.post(
                self.settings.endpoint_url,
                data=body,
                timeout=(
                    min(CONNECT_TIMEOUT_SECONDS, self.settings.request_timeout),
                    self.settings.request_timeout,
                ),
            )
        except requests.Timeout as exc:
            timeout = self.settings.request_timeout
            reason = f"timed out after {timeout:g} s ({type(exc).__name__})"
            return 0, (Outcome.RETRYABLE, reason), None
        except (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            reason = f"connection error: {type(exc).__name__}"
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
