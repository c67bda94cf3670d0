"""The quick start's Meltano pipeline, run for real into a sandbox server."""

from __future__ import annotations

import csv
import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

from target_customergauge_stream.sandbox import Sandbox
from tests.conftest import TEST_API_KEY

ROOT = Path(__file__).resolve().parents[1]
MELTANO = Path(sys.executable).parent / "meltano"
CSV_PATH = ROOT / "examples" / "transactions.csv"
# CSV header -> the account field name that the meltano.yml stream maps produce.
FIELD_NAMES = {
    "Email": "Email",
    "FirstName": "FirstName",
    "LastName": "LastName",
    "Company": "Company",
    "Country": "Country",
    "Language": "Language",
    "Reference": "Reference",
    "order_date": "order_date",
    "Amount": "Amount",
    "Segment": "Segment",
    "Notes": "Notes",
}


def expected_row(row: dict[str, str]) -> dict[str, str]:
    expected = {FIELD_NAMES[name]: value for name, value in row.items()}
    moment = datetime.datetime.fromisoformat(row["order_date"].replace("Z", "+00:00"))
    expected["order_date"] = moment.astimezone(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    return expected


@pytest.mark.meltano
@pytest.mark.skipif(
    not MELTANO.exists(), reason="meltano is not installed in this environment"
)
def test_meltano_run_delivers_demo_csv(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "CUSTOMERGAUGE_API_KEY": TEST_API_KEY,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    with Sandbox(
        api_key=TEST_API_KEY, store_dir=tmp_path / "uploads", required_fields=["Email"]
    ) as sandbox:
        environment["TARGET_CUSTOMERGAUGE_STREAM_API_URL"] = sandbox.endpoint_url()
        for command in (
            [str(MELTANO), "install"],
            [
                str(MELTANO),
                "run",
                "--full-refresh",
                "tap-spreadsheets",
                "target-customergauge-stream",
            ],
        ):
            completed = subprocess.run(
                command,
                cwd=ROOT,
                env=environment,
                capture_output=True,
                text=True,
                timeout=480,
                check=False,
            )
            assert completed.returncode == 0, completed.stderr[-4000:]
        received = sandbox.records()
        uploads = list(sandbox.state.uploads)

    with CSV_PATH.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3000
    assert len(received) == len(rows)
    assert len({record["Email"] for record in received}) == len(rows)
    assert all(len(upload.records) <= 2000 for upload in uploads)
    assert all(upload.size <= 2_000_000 for upload in uploads)
    for row, record in zip(rows, received, strict=True):
        assert record == expected_row(row)
