"""The Singer SDK's standard target tests, run against a real sandbox server."""

from __future__ import annotations

import tempfile
import typing as t
from pathlib import Path

import pytest
from singer_sdk.testing import get_target_test_class

from target_customergauge_stream.sandbox import Sandbox
from target_customergauge_stream.target import TargetCustomerGaugeStream
from tests.conftest import TEST_API_KEY

# The SDK builds the test class from a static config, so the sandbox must be
# listening before collection. It stops at the end of this module.
_SANDBOX = Sandbox(api_key=TEST_API_KEY).start()

# Every standard test runs; none is skipped. The suite in singer-sdk 0.54.9
# covers array data, camel case names, CLI prints, duplicate records, encoded
# strings, invalid schemas, missing key properties, optional attributes,
# primary key updates, records before schema, schema updates, schemas without
# properties and special characters in attribute names.
StandardTargetTests = get_target_test_class(
    TargetCustomerGaugeStream,
    config={
        "api_key": TEST_API_KEY,
        "api_url": _SANDBOX.endpoint_url(),
        "retry_backoff_seconds": 0.01,
        # The SDK's test streams carry no Email field, which the default
        # record_schema requires; an empty schema checks nothing.
        "record_schema": {},
        "ledger_path": str(Path(tempfile.mkdtemp()) / "ledger.sqlite"),
    },
)


class TestStandardTarget(StandardTargetTests):  # type: ignore[misc, valid-type]
    """Standard tests, plus a check that each sync really reached the sandbox."""


@pytest.fixture(scope="module", autouse=True)
def _stop_sandbox() -> t.Iterator[None]:
    yield
    _SANDBOX.stop()


def test_standard_suite_uploaded_records() -> None:
    # Runs after the class above in file order: the suite's syncs that carry
    # valid records must have produced accepted uploads.
    summary = _SANDBOX.state.summary()
    assert summary["uploads"] > 0
    assert summary["records"] > 0
