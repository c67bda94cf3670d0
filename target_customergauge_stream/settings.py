"""Settings of the target: their JSON schema, checks and resolved values."""

from __future__ import annotations

import ipaddress
import typing as t
import zoneinfo
from dataclasses import dataclass
from urllib.parse import urlsplit

import jsonschema
from singer_sdk import typing as th

# Caps of the Stream API ("Stream - POST Transactional" in CustomerGauge's
# support pages): 2 MB and 2,000 records per upload. The page does not say
# whether MB means 10**6 or 2**20 bytes, so the default stays under 10**6 * 2
# and no setting may go above 2**21.
API_MAX_RECORDS = 2000
API_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 2_000_000

REGION_HOSTS = {
    "eu": "api.eu.customergauge.com",
    "us": "api.us.customergauge.com",
    "au": "api.au.customergauge.com",
}
ENDPOINT_PATH = "/v4.1/stream/transactional"
RESPONSE_FORMATS = ("json", "xml")

SECRET_SETTINGS = frozenset({"api_key"})

CONFIG_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        secret=True,
        title="API key",
        description=(
            "CustomerGauge API key, sent as 'Authorization: api_key <KEY>'. "
            "Create one in the CustomerGauge account's admin section."
        ),
    ),
    th.Property(
        "region",
        th.StringType,
        default="eu",
        allowed_values=list(REGION_HOSTS),
        title="Region",
        description=(
            "Region of the CustomerGauge account: 'eu', 'us' or 'au'. Picks the "
            "production host api.<region>.customergauge.com. Ignored when "
            "'api_url' is set."
        ),
    ),
    th.Property(
        "api_url",
        th.StringType,
        title="API URL",
        description=(
            "Full URL of the Stream API endpoint, overriding 'region', for a proxy "
            "or the local sandbox. Must use https://, except for loopback hosts "
            "(127.0.0.0/8, ::1, localhost) where http:// is allowed. When the path "
            "ends in .json or .xml, that suffix must match 'response_format'; "
            "otherwise the suffix of 'response_format' is appended."
        ),
    ),
    th.Property(
        "response_format",
        th.StringType,
        default="json",
        allowed_values=list(RESPONSE_FORMATS),
        title="Response format",
        description=(
            "Format CustomerGauge answers in: 'json' or 'xml'. Picks the suffix "
            "of the endpoint URL and how response bodies are read."
        ),
    ),
    th.Property(
        "batch_size_rows",
        th.IntegerType,
        default=API_MAX_RECORDS,
        title="Records per upload",
        description=(
            "Maximum number of records in one upload, from 1 to 2000 (the Stream "
            "API's cap). Uploads are packed up to this count or to "
            "'max_upload_bytes', whichever is reached first."
        ),
    ),
    th.Property(
        "max_upload_bytes",
        th.IntegerType,
        default=DEFAULT_MAX_UPLOAD_BYTES,
        title="Maximum upload size",
        description=(
            "Maximum size of one request body in bytes, counted on the exact bytes "
            "sent (XML declaration, wrapper and escaping included). At most "
            "2097152; the default 2000000 stays under the API's 2 MB cap whichever "
            "way MB is read."
        ),
    ),
    th.Property(
        "request_timeout",
        th.NumberType,
        default=300,
        title="Request timeout",
        description=(
            "Seconds to wait for the response to one upload. CustomerGauge can "
            "take several minutes to answer a large upload."
        ),
    ),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=8,
        title="Maximum retries",
        description=(
            "How many times one upload is sent again after a connection error, a "
            "timeout, HTTP 429 or a 5xx status, with exponential backoff between "
            "attempts. 0 disables retries."
        ),
    ),
    th.Property(
        "retry_backoff_seconds",
        th.NumberType,
        default=1.0,
        title="Retry backoff",
        description=(
            "Seconds to wait before the first retry of an upload. The wait "
            "doubles with each further retry, up to 60 seconds, and a random "
            "part of up to half of it is taken off so that runs do not retry "
            "in step. A Retry-After header from CustomerGauge takes precedence."
        ),
    ),
    th.Property(
        "timezone",
        th.StringType,
        default="UTC",
        title="Time zone",
        description=(
            "IANA time zone name (for example 'Europe/Amsterdam') that date-time "
            "values are converted to before they are written as "
            "'YYYY-MM-DD HH:MM:SS'. Values without an offset are read as UTC."
        ),
    ),
).to_dict()

# Bounds that the JSON schema above does not carry, so that `--about` shows
# plain types while the checks below give messages that name the setting.
_INTEGER_BOUNDS: dict[str, tuple[int, int]] = {
    "batch_size_rows": (1, API_MAX_RECORDS),
    "max_upload_bytes": (1024, API_MAX_BYTES),
    "max_retries": (0, 100),
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings with every default filled in."""

    api_key: str
    endpoint_url: str
    response_format: str
    batch_size_rows: int
    max_upload_bytes: int
    request_timeout: float
    max_retries: int
    retry_backoff_seconds: float
    timezone: zoneinfo.ZoneInfo


def _describe_schema_error(error: jsonschema.ValidationError) -> str:
    """Describe a JSON schema error by setting name, without echoing secrets."""
    setting = ".".join(str(part) for part in error.absolute_path) or "config"
    expected = error.schema.get("type") if isinstance(error.schema, dict) else None
    if error.validator == "type":
        return f"Setting '{setting}' is invalid: expected a value of type {expected}."
    if error.validator == "enum":
        allowed = ", ".join(repr(value) for value in error.validator_value)
        if setting in SECRET_SETTINGS:
            return f"Setting '{setting}' is invalid: allowed values are {allowed}."
        return (
            f"Setting '{setting}' is invalid: {error.instance!r} is not allowed; "
            f"use one of {allowed}."
        )
    return f"Setting '{setting}' is invalid ({error.validator} rule)."


def _check_api_url(url: str, response_format: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return [
            "Setting 'api_url' is invalid: expected an absolute http(s) URL such as "
            "https://api.eu.customergauge.com/v4.1/stream/transactional.json."
        ]
    errors = []
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        errors.append(
            f"Setting 'api_url' is invalid: plain http:// is only allowed for "
            f"loopback hosts, not {parts.hostname!r}. Use https://."
        )
    for suffix in RESPONSE_FORMATS:
        if parts.path.endswith(f".{suffix}") and suffix != response_format:
            errors.append(
                f"Setting 'api_url' ends in .{suffix} but 'response_format' is "
                f"{response_format!r}. Make them match, or drop the suffix from "
                f"'api_url' to let 'response_format' add it."
            )
    return errors


def is_loopback_host(host: str) -> bool:
    """Tell whether a URL host name or address is on the loopback interface."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_config(
    config: t.Mapping[str, t.Any], schema: dict[str, t.Any]
) -> list[str]:
    """Check a config against the schema and the rules between settings.

    Args:
        config: The config as the user gave it.
        schema: The target's full config JSON schema, SDK settings included.

    Returns:
        One message per problem, each naming the setting and what is allowed.
        Messages never contain the value of a secret setting.
    """
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        _describe_schema_error(error)
        for error in sorted(validator.iter_errors(dict(config)), key=str)
    ]
    if errors:
        return errors

    for name, (low, high) in _INTEGER_BOUNDS.items():
        value = config.get(name)
        if value is not None and not low <= value <= high:
            errors.append(
                f"Setting '{name}' is {value}, out of range: use a whole number "
                f"from {low} to {high}."
            )

    timeout = config.get("request_timeout")
    if timeout is not None and timeout <= 0:
        errors.append("Setting 'request_timeout' must be a number of seconds above 0.")
    backoff = config.get("retry_backoff_seconds")
    if backoff is not None and not 0 <= backoff <= 600:
        errors.append(
            "Setting 'retry_backoff_seconds' must be a number of seconds from 0 to 600."
        )

    timezone = config.get("timezone")
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors.append(
                f"Setting 'timezone' is {timezone!r}, which is not an IANA time zone "
                f"name. Use a name such as 'UTC' or 'Europe/Amsterdam'."
            )

    if not config.get("api_key"):
        errors.append(
            "Setting 'api_key' is missing: set it to the API key from the "
            "CustomerGauge account's admin section."
        )

    response_format = setting_value(config, "response_format")
    api_url = config.get("api_url")
    if api_url:
        errors.extend(_check_api_url(api_url, response_format))
    return errors


def setting_value(config: t.Mapping[str, t.Any], name: str) -> t.Any:  # noqa: ANN401
    """Return a setting's value, or its schema default when it is unset or null."""
    value = config.get(name)
    if value is None:
        return CONFIG_SCHEMA["properties"].get(name, {}).get("default")
    return value


def resolve_endpoint_url(config: t.Mapping[str, t.Any]) -> str:
    """Build the Stream API URL from 'api_url', or from 'region' when it is unset."""
    response_format = setting_value(config, "response_format")
    api_url = config.get("api_url")
    if api_url:
        parts = urlsplit(api_url)
        if parts.path.endswith((".json", ".xml")):
            return str(api_url)
        return str(parts._replace(path=f"{parts.path}.{response_format}").geturl())
    host = REGION_HOSTS[setting_value(config, "region")]
    return f"https://{host}{ENDPOINT_PATH}.{response_format}"


def resolve_settings(config: t.Mapping[str, t.Any]) -> Settings:
    """Turn a validated config into settings with every default filled in."""
    return Settings(
        api_key=str(config.get("api_key") or ""),
        endpoint_url=resolve_endpoint_url(config),
        response_format=setting_value(config, "response_format"),
        batch_size_rows=int(setting_value(config, "batch_size_rows")),
        max_upload_bytes=int(setting_value(config, "max_upload_bytes")),
        request_timeout=float(setting_value(config, "request_timeout")),
        max_retries=int(setting_value(config, "max_retries")),
        retry_backoff_seconds=float(setting_value(config, "retry_backoff_seconds")),
        timezone=zoneinfo.ZoneInfo(setting_value(config, "timezone")),
    )
