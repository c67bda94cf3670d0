"""The two ways to authenticate with CustomerGauge: an API key or OAuth2."""

from __future__ import annotations

import logging
import threading
import time
import typing as t

import requests

LOGGER = logging.getLogger(__name__)

# Renew an access token this long before CustomerGauge says it expires, so
# that a token never runs out during a long upload.
TOKEN_RENEWAL_MARGIN_SECONDS = 300.0
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600.0


class AuthenticationError(RuntimeError):
    """The credentials were rejected or no token could be obtained.

    Attributes:
        retryable: The token endpoint was unreachable or answered 5xx, so a
            later attempt may succeed; rejected credentials are not retryable.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ApiKeyAuth:
    """Send the account's API key as `Authorization: api_key <KEY>`."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or error."""
        return (self._api_key,)

    def header(self) -> str:
        """Return the Authorization header value."""
        return f"api_key {self._api_key}"

    def renew(self) -> bool:
        """Report that a rejected API key cannot be renewed."""
        return False


class OAuth2ClientCredentials:
    """Fetch and renew a Bearer token with the OAuth2 client credentials grant.

    The token is fetched on first use, renewed shortly before the expiry that
    the token endpoint reports (one hour at CustomerGauge), and renewed once
    more when an upload is answered with 401.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        session: requests.Session,
        timeout: float,
        verify: str | bool = True,
    ) -> None:
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session
        self._timeout = timeout
        self._verify = verify
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or error."""
        return tuple(value for value in (self._client_secret, self._token) if value)

    def header(self) -> str:
        """Return the Authorization header value, fetching a token if needed.

        Raises:
            AuthenticationError: If the token endpoint does not issue a token.
        """
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._fetch()
            return f"Bearer {self._token}"

    def renew(self) -> bool:
        """Drop the current token so that the next request fetches a new one."""
        with self._lock:
            self._token = None
        return True

    def _fetch(self) -> None:
        try:
            response = self._session.post(
                self.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
                headers={"Authorization": None},
                timeout=self._timeout,
                verify=self._verify,
            )
        except requests.RequestException as exc:
            msg = (
                f"Could not reach the OAuth2 token endpoint {self.token_url} "
                f"({type(exc).__name__}). Check 'token_url' or 'region'."
            )
            raise AuthenticationError(msg, retryable=True) from None
        document: dict[str, t.Any] = {}
        try:
            parsed = response.json()
            if isinstance(parsed, dict):
                document = parsed
        except ValueError:
            pass
        token = document.get("access_token")
        if response.status_code != 200 or not isinstance(token, str) or not token:
            msg = (
                f"The OAuth2 token endpoint {self.token_url} answered HTTP "
                f"{response.status_code} without an access token. Check "
                f"'client_id' and 'client_secret' in the CustomerGauge account's "
                f"API credentials."
            )
            raise AuthenticationError(msg, retryable=response.status_code >= 500)
        lifetime = document.get("expires_in")
        seconds = (
            float(lifetime)
            if isinstance(lifetime, (int, float)) and lifetime > 0
            else DEFAULT_TOKEN_LIFETIME_SECONDS
        )
        margin = min(TOKEN_RENEWAL_MARGIN_SECONDS, seconds / 2)
        self._token = token
        self._expires_at = time.monotonic() + seconds - margin
        LOGGER.info("Obtained an OAuth2 access token valid for %.0f s.", seconds)


Authenticator = t.Union[ApiKeyAuth, OAuth2ClientCredentials]  # noqa: UP007
