"""Unit tests of config checks, resolved settings and Retry-After parsing."""

from __future__ import annotations

import copy
import email.utils
import typing as t
import zoneinfo
from pathlib import Path

import pytest

from target_customergauge_stream.client import parse_retry_after
from target_customergauge_stream.settings import (
    Settings,
    resolve_endpoint_url,
    resolve_settings,
    validate_config,
)
from target_customergauge_stream.target import TargetCustomerGaugeStream

API_KEY = "example-api-key-0001"
ENDPOINT = "https://api.eu.customergauge.com/v4.1/stream/transactional"


@pytest.fixture(scope="module")
def schema() -> dict[str, t.Any]:
    full_schema = copy.deepcopy(TargetCustomerGaugeStream.config_jsonschema)
    TargetCustomerGaugeStream.append_builtin_config(full_schema)
    return full_schema


def validate_with_key(schema: dict[str, t.Any], **settings: t.Any) -> list[str]:
    """Validate a config that contains the API key plus the given settings."""
    return validate_config({"api_key": API_KEY, **settings}, schema)


# validate_config


def test_minimal_config_valid(schema: dict[str, t.Any]) -> None:
    assert validate_with_key(schema) == []


def test_full_config_valid(schema: dict[str, t.Any]) -> None:
    errors = validate_with_key(
        schema,
        region="au",
        response_format="xml",
        batch_size_rows=500,
        max_upload_bytes=1_000_000,
        request_timeout=60,
        max_retries=3,
        retry_backoff_seconds=0.5,
        timezone="Europe/Amsterdam",
    )

    assert errors == []


@pytest.mark.parametrize("value", [1, 2000])
def test_batch_size_in_range(schema: dict[str, t.Any], value: int) -> None:
    assert validate_with_key(schema, batch_size_rows=value) == []


@pytest.mark.parametrize("value", [0, 2001])
def test_batch_size_out_of_range(schema: dict[str, t.Any], value: int) -> None:
    errors = validate_with_key(schema, batch_size_rows=value)

    assert len(errors) == 1
    assert "'batch_size_rows'" in errors[0]


@pytest.mark.parametrize("value", [1024, 2097152])
def test_upload_bytes_in_range(schema: dict[str, t.Any], value: int) -> None:
    assert validate_with_key(schema, max_upload_bytes=value) == []


@pytest.mark.parametrize("value", [1023, 2097153])
def test_upload_bytes_out_of_range(schema: dict[str, t.Any], value: int) -> None:
    errors = validate_with_key(schema, max_upload_bytes=value)

    assert len(errors) == 1
    assert "'max_upload_bytes'" in errors[0]


def test_unknown_region_rejected(schema: dict[str, t.Any]) -> None:
    errors = validate_with_key(schema, region="mars")

    assert len(errors) == 1
    assert "'region'" in errors[0]
    assert "'eu'" in errors[0]


def test_unknown_response_format_rejected(schema: dict[str, t.Any]) -> None:
    errors = validate_with_key(schema, response_format="csv")

    assert len(errors) == 1
    assert "'response_format'" in errors[0]


@pytest.mark.parametrize(
    "url",
    ["http://example.com/v4.1/stream/transactional", "http://10.0.0.8:8080/stream"],
)
def test_plain_http_remote_rejected(schema: dict[str, t.Any], url: str) -> None:
    errors = validate_with_key(schema, api_url=url)

    assert len(errors) == 1
    assert "'api_url'" in errors[0]
    assert "https://" in errors[0]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v4.1/stream/transactional",
        "http://127.0.0.5/stream",
        "http://[::1]:8080/stream",
        "http://localhost:8080/stream",
        "https://proxy.example.com/v4.1/stream/transactional",
        "https://203.0.113.7/stream",
    ],
)
def test_allowed_api_url_accepted(schema: dict[str, t.Any], url: str) -> None:
    assert validate_with_key(schema, api_url=url) == []


@pytest.mark.parametrize("url", ["ftp://example.com/stream", "example.com/stream"])
def test_non_http_api_url_rejected(schema: dict[str, t.Any], url: str) -> None:
    errors = validate_with_key(schema, api_url=url)

    assert len(errors) == 1
    assert "'api_url'" in errors[0]


@pytest.mark.parametrize(
    ("url", "response_format"),
    [
        ("https://proxy.example.com/stream/transactional.xml", "json"),
        ("https://proxy.example.com/stream/transactional.json", "xml"),
    ],
)
def test_mismatched_suffix_rejected(
    schema: dict[str, t.Any], url: str, response_format: str
) -> None:
    errors = validate_with_key(schema, api_url=url, response_format=response_format)

    assert len(errors) == 1
    assert "'response_format'" in errors[0]


def test_matching_suffix_accepted(schema: dict[str, t.Any]) -> None:
    url = "https://proxy.example.com/stream/transactional.xml"

    assert validate_with_key(schema, api_url=url, response_format="xml") == []


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "Europe", "", "UTC "])
def test_unknown_timezone_rejected(schema: dict[str, t.Any], timezone: str) -> None:
    errors = validate_with_key(schema, timezone=timezone)

    assert len(errors) == 1
    assert "'timezone'" in errors[0]


@pytest.mark.parametrize("config", [{}, {"api_key": ""}, {"api_key": None}])
def test_missing_api_key_rejected(
    schema: dict[str, t.Any], config: dict[str, t.Any]
) -> None:
    errors = validate_config(config, schema)

    assert len(errors) == 1
    assert "'api_key' is missing" in errors[0]


@pytest.mark.parametrize(
    ("api_key", "secret_text"),
    [
        (987654321, "987654321"),
        (["cg-live-key-8f14e45fceea167a"], "cg-live-key-8f14e45fceea167a"),
        ({"key": "cg-live-key-c9f0f895fb98ab91"}, "cg-live-key-c9f0f895fb98ab91"),
    ],
    ids=["integer", "list", "object"],
)
def test_wrong_type_key_not_echoed(
    schema: dict[str, t.Any], api_key: t.Any, secret_text: str
) -> None:
    errors = validate_config({"api_key": api_key}, schema)

    assert len(errors) == 1
    assert "'api_key'" in errors[0]
    assert secret_text not in errors[0]


@pytest.mark.parametrize(
    ("setting", "value"),
    [("request_timeout", 0), ("retry_backoff_seconds", -1), ("max_retries", 101)],
)
def test_number_out_of_range(
    schema: dict[str, t.Any], setting: str, value: int
) -> None:
    errors = validate_with_key(schema, **{setting: value})

    assert len(errors) == 1
    assert f"'{setting}'" in errors[0]


# resolve_endpoint_url


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("eu", "api.eu.customergauge.com"),
        ("us", "api.us.customergauge.com"),
        ("au", "api.au.customergauge.com"),
    ],
)
def test_region_endpoint(region: str, host: str) -> None:
    url = resolve_endpoint_url({"region": region})

    assert url == f"https://{host}/v4.1/stream/transactional.json"


def test_region_endpoint_xml() -> None:
    url = resolve_endpoint_url({"region": "us", "response_format": "xml"})

    assert url == "https://api.us.customergauge.com/v4.1/stream/transactional.xml"


def test_default_region_endpoint() -> None:
    assert resolve_endpoint_url({}) == f"{ENDPOINT}.json"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"api_url": "http://127.0.0.1:8080/v4.1/stream/transactional"},
            "http://127.0.0.1:8080/v4.1/stream/transactional.json",
        ),
        (
            {
                "api_url": "https://proxy.example.com/stream",
                "response_format": "xml",
            },
            "https://proxy.example.com/stream.xml",
        ),
        (
            {"api_url": "https://proxy.example.com/stream?tenant=demo"},
            "https://proxy.example.com/stream.json?tenant=demo",
        ),
    ],
    ids=["loopback", "xml", "query"],
)
def test_api_url_gets_suffix(config: dict[str, t.Any], expected: str) -> None:
    assert resolve_endpoint_url(config) == expected


@pytest.mark.parametrize(
    ("url", "response_format"),
    [
        ("https://proxy.example.com/stream/transactional.json", "json"),
        ("http://localhost:8080/stream/transactional.xml", "xml"),
    ],
)
def test_api_url_suffix_kept(url: str, response_format: str) -> None:
    config = {"api_url": url, "response_format": response_format, "region": "us"}

    assert resolve_endpoint_url(config) == url


# resolve_settings


def test_settings_defaults() -> None:
    settings = resolve_settings({"api_key": API_KEY})

    assert settings == Settings(
        api_key=API_KEY,
        client_id="",
        client_secret="",
        token_url="https://auth.eu.customergauge.com/oauth2/token",
        endpoint_url=f"{ENDPOINT}.json",
        response_format="json",
        batch_size_rows=2000,
        max_upload_bytes=2_000_000,
        request_timeout=300.0,
        max_retries=8,
        retry_backoff_seconds=1.0,
        max_retry_wait=600.0,
        upload_deadline=3600.0,
        min_upload_interval=0.0,
        failed_uploads_dir=Path("failed-uploads"),
        ca_bundle=None,
        timezone=zoneinfo.ZoneInfo("UTC"),
    )


def test_settings_from_config() -> None:
    settings = resolve_settings(
        {
            "api_key": API_KEY,
            "api_url": "http://127.0.0.1:9000/stream",
            "response_format": "xml",
            "batch_size_rows": 10,
            "max_upload_bytes": 4096,
            "request_timeout": 5,
            "max_retries": 0,
            "retry_backoff_seconds": 0,
            "max_retry_wait": 30,
            "upload_deadline": 90,
            "min_upload_interval": 2,
            "failed_uploads_dir": "/var/tmp/undelivered",
            "timezone": "Europe/Amsterdam",
        }
    )

    assert settings == Settings(
        api_key=API_KEY,
        client_id="",
        client_secret="",
        token_url="https://auth.eu.customergauge.com/oauth2/token",
        endpoint_url="http://127.0.0.1:9000/stream.xml",
        response_format="xml",
        batch_size_rows=10,
        max_upload_bytes=4096,
        request_timeout=5.0,
        max_retries=0,
        retry_backoff_seconds=0.0,
        max_retry_wait=30.0,
        upload_deadline=90.0,
        min_upload_interval=2.0,
        failed_uploads_dir=Path("/var/tmp/undelivered"),
        ca_bundle=None,
        timezone=zoneinfo.ZoneInfo("Europe/Amsterdam"),
    )


def test_null_settings_pass_validation(schema: dict[str, t.Any]) -> None:
    errors = validate_with_key(schema, max_retries=None, retry_backoff_seconds=None)

    assert errors == []


@pytest.mark.parametrize("setting", ["max_retries", "retry_backoff_seconds"])
def test_null_setting_uses_default(setting: str) -> None:
    defaults = resolve_settings({"api_key": API_KEY})

    settings = resolve_settings({"api_key": API_KEY, setting: None})

    assert getattr(settings, setting) == getattr(defaults, setting)


# parse_retry_after

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"), [("120", 120.0), (" 7 ", 7.0), ("0", 0.0)]
)
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_http_date() -> None:
    value = email.utils.formatdate(NOW + 90, usegmt=True)

    assert parse_retry_after(value, now=NOW) == 90.0


def test_retry_after_fixed_date() -> None:
    # 1445412480 is Wed, 21 Oct 2015 07:28:00 UTC.
    value = "Wed, 21 Oct 2015 07:28:00 GMT"

    assert parse_retry_after(value, now=1445412480.0 - 30) == 30.0


def test_retry_after_past_date() -> None:
    value = email.utils.formatdate(NOW - 90, usegmt=True)

    assert parse_retry_after(value, now=NOW) == 0.0


@pytest.mark.parametrize("value", ["soon", "1.5", "-5", "Wed, 99 Foo 2015"])
def test_retry_after_garbage(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize("value", [None, ""])
def test_retry_after_missing(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None
