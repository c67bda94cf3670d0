"""Settings of the target: their JSON schema, checks and resolved values."""

from __future__ import annotations

import ipaddress
import typing as t
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
from singer_sdk import typing as th

from target_customergauge_stream.mapping import (
    MAPPING_PROPERTIES,
    validate_mapping_config,
)

# Caps of the Stream API ("Stream - POST Transactional" in CustomerGauge's
# support pages): 2 MB and 2,000 records per upload. The page does not say
# whether MB means 10**6 or 2**20 bytes, so the default stays under 10**6 * 2
# and no setting may go above 2**21.
API_MAX_RECORDS = 2000
API_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 2_000_000

TOKEN_URL_TEMPLATE = "https://auth.{region}.customergauge.com/oauth2/token"  # noqa: S105
REGION_HOSTS = {
    "eu": "api.eu.customergauge.com",
    "us": "api.us.customergauge.com",
    "au": "api.au.customergauge.com",
}
ENDPOINT_PATH = "/v4.1/stream/transactional"
RESPONSE_FORMATS = ("json", "xml")

SECRET_SETTINGS = frozenset({"api_key", "client_secret", "ledger_url"})

CONFIG_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        secret=True,
        title="API key",
        description=(
            "CustomerGauge API key, sent as 'Authorization: api_key <KEY>'. "
            "Create one in the CustomerGauge account's admin section. Set either "
            "this or 'client_id' and 'client_secret', not both."
        ),
    ),
    th.Property(
        "client_id",
        th.StringType,
        title="OAuth2 client ID",
        description=(
            "Client ID for OAuth2 client credentials, the authentication "
            "CustomerGauge recommends for its 4.1 APIs. Used with "
            "'client_secret' instead of 'api_key'."
        ),
    ),
    th.Property(
        "client_secret",
        th.StringType,
        secret=True,
        title="OAuth2 client secret",
        description="Client secret that goes with 'client_id'.",
    ),
    th.Property(
        "token_url",
        th.StringType,
        title="OAuth2 token URL",
        description=(
            "OAuth2 token endpoint, overriding the default "
            "https://auth.<region>.customergauge.com/oauth2/token (for example "
            "the local sandbox). Plain http:// only for loopback hosts."
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
            "sent (XML declaration, wrapper and escaping included). From 1024 to "
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
            "timeout, or HTTP 408, 429, 500, 502, 503 or 504, with exponential "
            "backoff between attempts. 0 disables retries."
        ),
    ),
    th.Property(
        "max_retry_wait",
        th.NumberType,
        default=600,
        title="Maximum Retry-After wait",
        description=(
            "Longest wait in seconds that a Retry-After header from "
            "CustomerGauge may ask for. A longer one fails the upload instead "
            "of stalling the run."
        ),
    ),
    th.Property(
        "upload_deadline",
        th.NumberType,
        default=3600,
        title="Upload deadline",
        description=(
            "Longest time in seconds that one upload may take across all its "
            "attempts and waits. A retry whose wait would end after it is not "
            "made and the upload fails; an attempt already under way may run "
            "up to 'request_timeout' past it."
        ),
    ),
    th.Property(
        "min_upload_interval",
        th.NumberType,
        default=0,
        title="Minimum upload interval",
        description=(
            "Seconds to wait between the end of one upload and the start of "
            "the next. CustomerGauge queues uploads that arrive in quick "
            "succession; a pause keeps that queue short."
        ),
    ),
    th.Property(
        "failed_uploads_dir",
        th.StringType,
        default="failed-uploads",
        title="Failed uploads folder",
        description=(
            "Folder, relative to the working directory unless absolute, where "
            "the exact body of every upload that was not delivered is saved "
            "with a JSON description, for target-customergauge-stream-replay."
        ),
    ),
    th.Property(
        "ca_bundle",
        th.StringType,
        title="CA bundle",
        description=(
            "Path to a PEM file of certificate authorities to trust instead of "
            "the default ones, for corporate proxies that re-sign TLS. "
            "Certificates are always verified."
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
        "dedup",
        th.BooleanType,
        default=True,
        title="Deduplicate with the delivery ledger",
        description=(
            "Keep a ledger of delivered records and never upload a record whose "
            "key was delivered before, so that re-runs, retries and overlapping "
            "incremental windows survey nobody twice. false turns it off."
        ),
    ),
    th.Property(
        "ledger_path",
        th.StringType,
        default="customergauge-ledger.sqlite",
        title="Ledger file",
        description=(
            "SQLite file of the delivery ledger, relative to the working "
            "directory unless absolute. Ignored when 'ledger_url' is set."
        ),
    ),
    th.Property(
        "ledger_url",
        th.StringType,
        secret=True,
        title="Ledger database URL",
        description=(
            "SQLAlchemy URL of a database for the ledger instead of the SQLite "
            "file, such as postgresql+psycopg://user:password@host/db (install "
            "the 'postgres' extra). Use it when CI runners are thrown away "
            "between runs or several runners share one account."
        ),
    ),
    th.Property(
        "resend_changed",
        th.BooleanType,
        default=False,
        title="Resend changed records",
        description=(
            "Send a record again when its key was delivered but the record "
            "changed. Off by default, because each upload can survey the "
            "customer again."
        ),
    ),
    th.Property(
        "in_doubt",
        th.StringType,
        default="halt",
        allowed_values=["halt", "resend"],
        title="In-doubt uploads",
        description=(
            "What to do with an upload that may or may not have arrived (a "
            "timeout after the body was sent, a connection dropped mid-"
            "response, a run stopped mid-upload). 'halt' stops and asks you to "
            "resolve it with target-customergauge-stream-ledger; 'resend' sends "
            "the byte-identical body again and counts CustomerGauge's "
            "already-processed answer as delivered."
        ),
    ),
    th.Property(
        "load_method",
        th.StringType,
        default="append-only",
        allowed_values=["append-only", "upsert", "overwrite"],
        title="Load method",
        description=(
            "The Singer SDK's standard load method setting, accepted for "
            "compatibility. It has no effect here: every record is sent to the "
            "Stream API as a new transactional record."
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
    *MAPPING_PROPERTIES,
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
    client_id: str
    client_secret: str
    token_url: str
    endpoint_url: str
    response_format: str
    batch_size_rows: int
    max_upload_bytes: int
    request_timeout: float
    max_retries: int
    retry_backoff_seconds: float
    max_retry_wait: float
    upload_deadline: float
    min_upload_interval: float
    failed_uploads_dir: Path
    ca_bundle: str | None
    timezone: zoneinfo.ZoneInfo
    dedup: bool = True
    ledger_url: str = "sqlite:///customergauge-ledger.sqlite"
    resend_changed: bool = False
    halt_in_doubt: bool = True
    dry_run: bool = False
    dry_run_dir: Path = Path("dry-run")
    rejects_path: Path = Path("rejected-records.jsonl")

    @property
    def uses_oauth2(self) -> bool:
        """Tell whether uploads authenticate with OAuth2 instead of an API key."""
        return bool(self.client_id)


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


def _check_url(setting: str, url: str, example: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return [
            f"Setting '{setting}' is invalid: expected an absolute http(s) URL "
            f"such as {example}."
        ]
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return [
            f"Setting '{setting}' is invalid: plain http:// is only allowed for "
            f"loopback hosts, not {parts.hostname!r}. Use https://."
        ]
    return []


def _check_api_url(url: str, response_format: str) -> list[str]:
    errors = _check_url(
        "api_url",
        url,
        "https://api.eu.customergauge.com/v4.1/stream/transactional.json",
    )
    if errors:
        return errors
    parts = urlsplit(url)
    for suffix in RESPONSE_FORMATS:
        if parts.path.endswith(f".{suffix}") and suffix != response_format:
            errors.append(
                f"Setting 'api_url' ends in .{suffix} but 'response_format' is "
                f"{response_format!r}. Make them match, or drop the suffix from "
                f"'api_url' to let 'response_format' add it."
            )
    return errors


def _check_authentication(config: t.Mapping[str, t.Any]) -> list[str]:
    has_key = bool(config.get("api_key"))
    has_id = bool(config.get("client_id"))
    has_secret = bool(config.get("client_secret"))
    if has_key and (has_id or has_secret):
        return [
            "Settings 'api_key' and 'client_id'/'client_secret' are both set: "
            "configure exactly one way to authenticate."
        ]
    if has_id != has_secret:
        missing = "client_secret" if has_id else "client_id"
        return [
            f"Setting '{missing}' is missing: OAuth2 needs both 'client_id' and "
            f"'client_secret'."
        ]
    if not has_key and not has_id:
        return [
            "Setting 'api_key' is missing: set it to the API key from the "
            "CustomerGauge account's admin section, or set 'client_id' and "
            "'client_secret' for OAuth2."
        ]
    token_url = config.get("token_url")
    if token_url:
        return _check_url(
            "token_url", token_url, TOKEN_URL_TEMPLATE.format(region="eu")
        )
    return []


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
        # A folder name such as 'Europe' raises IsADirectoryError when the
        # tzdata package supplies the zone files.
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            errors.append(
                f"Setting 'timezone' is {timezone!r}, which is not an IANA time zone "
                f"name. Use a name such as 'UTC' or 'Europe/Amsterdam'."
            )

    if not config.get("dry_run"):
        errors.extend(_check_authentication(config))
    errors.extend(validate_mapping_config(config))
    for name in ("max_retry_wait", "upload_deadline", "min_upload_interval"):
        value = config.get(name)
        if value is not None and value < 0:
            errors.append(f"Setting '{name}' must be a number of seconds, 0 or more.")
    ca_bundle = config.get("ca_bundle")
    if ca_bundle and not Path(ca_bundle).is_file():
        errors.append(
            f"Setting 'ca_bundle' names {ca_bundle!r}, which is not a file. Give "
            f"the path of a PEM file of certificate authorities."
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
    ca_bundle = config.get("ca_bundle")
    return Settings(
        api_key=str(config.get("api_key") or ""),
        client_id=str(config.get("client_id") or ""),
        client_secret=str(config.get("client_secret") or ""),
        token_url=str(
            config.get("token_url")
            or TOKEN_URL_TEMPLATE.format(region=setting_value(config, "region"))
        ),
        endpoint_url=resolve_endpoint_url(config),
        response_format=setting_value(config, "response_format"),
        batch_size_rows=int(setting_value(config, "batch_size_rows")),
        max_upload_bytes=int(setting_value(config, "max_upload_bytes")),
        request_timeout=float(setting_value(config, "request_timeout")),
        max_retries=int(setting_value(config, "max_retries")),
        retry_backoff_seconds=float(setting_value(config, "retry_backoff_seconds")),
        max_retry_wait=float(setting_value(config, "max_retry_wait")),
        upload_deadline=float(setting_value(config, "upload_deadline")),
        min_upload_interval=float(setting_value(config, "min_upload_interval")),
        failed_uploads_dir=Path(setting_value(config, "failed_uploads_dir")),
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        timezone=zoneinfo.ZoneInfo(setting_value(config, "timezone")),
        dedup=bool(setting_value(config, "dedup")),
        ledger_url=str(
            config.get("ledger_url")
            or f"sqlite:///{setting_value(config, 'ledger_path')}"
        ),
        resend_changed=bool(setting_value(config, "resend_changed")),
        halt_in_doubt=setting_value(config, "in_doubt") == "halt",
        dry_run=bool(setting_value(config, "dry_run")),
        dry_run_dir=Path(setting_value(config, "dry_run_dir")),
        rejects_path=Path(setting_value(config, "rejects_path")),
    )
