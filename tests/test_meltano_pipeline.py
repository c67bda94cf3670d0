"""The quick start's Meltano pipeline, run for real into a sandbox server."""

from __future__ import annotations

import csv
import datetime
import json
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
# The account's fields, in the order of examples/data-structure.xml; the CSV's
# headers already carry these names.
ACCOUNT_FIELDS = [
    "Email",
    "FirstName",
    "LastName",
    "Company",
    "Country",
    "Language",
    "Reference",
    "order_date",
    "Amount",
    "Segment",
    "Notes",
]
# Rows the example CSV spoils on purpose (1-based data row numbers).
BAD_ROWS = {500, 1200, 1900, 2500}


def expected_row(row: dict[str, str]) -> dict[str, str]:
    expected = {name: row[name] for name in ACCOUNT_FIELDS}
    moment = datetime.datetime.fromisoformat(row["order_date"].replace("Z", "+00:00"))
    expected["order_date"] = moment.astimezone(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    return expected


def meltano(arguments: list[str], environment: dict[str, str]) -> None:
    completed = subprocess.run(
        [str(MELTANO), *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]


@pytest.mark.meltano
@pytest.mark.skipif(
    not MELTANO.exists(), reason="meltano is not installed in this environment"
)
def test_meltano_demo_dry_run_then_real_run(tmp_path: Path) -> None:
    run_command = [
        "run",
        "--full-refresh",
        "tap-spreadsheets",
        "target-customergauge-stream",
    ]
    environment = {
        **os.environ,
        "CUSTOMERGAUGE_API_KEY": TEST_API_KEY,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TARGET_CUSTOMERGAUGE_STREAM_REJECTS_PATH": str(tmp_path / "rejects.jsonl"),
        "TARGET_CUSTOMERGAUGE_STREAM_DRY_RUN_DIR": str(tmp_path / "dry-run"),
        "TARGET_CUSTOMERGAUGE_STREAM_LEDGER_PATH": str(tmp_path / "ledger.sqlite"),
    }
    with Sandbox(
        api_key=TEST_API_KEY, store_dir=tmp_path / "uploads", required_fields=["Email"]
    ) as sandbox:
        environment["TARGET_CUSTOMERGAUGE_STREAM_API_URL"] = sandbox.endpoint_url()
        meltano(["install"], environment)
        meltano(
            run_command, {**environment, "TARGET_CUSTOMERGAUGE_STREAM_DRY_RUN": "true"}
        )
        requests_after_dry_run = sandbox.state.summary()["requests"]
        meltano(run_command, environment)
        received = sandbox.records()
        uploads = list(sandbox.state.uploads)

    with CSV_PATH.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    good_rows = [
        row for number, row in enumerate(rows, start=1) if number not in BAD_ROWS
    ]

    # The dry run sent nothing and wrote the exact bodies the real run sent.
    assert requests_after_dry_run == 0
    dry_bodies = [
        path.read_bytes() for path in sorted((tmp_path / "dry-run").glob("*.xml"))
    ]
    assert dry_bodies == [upload.body for upload in uploads]

    # Every good row arrived once, mapped onto the account's fields in order.
    assert len(rows) == 3000
    assert len(received) == len(good_rows)
    assert len({record["Email"] for record in received}) == len(good_rows)
    assert all(len(upload.records) <= 2000 for upload in uploads)
    assert all(upload.size <= 2_000_000 for upload in uploads)
    for row, record in zip(good_rows, received, strict=True):
        assert list(record) == ACCOUNT_FIELDS
        assert record == expected_row(row)

    # The spoiled rows went to the rejects file, with reasons and no upload.
    rejects = [
        json.loads(line)
        for line in (tmp_path / "rejects.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    assert len(rejects) == len(BAD_ROWS)
    assert all(reject["stream"] == "transactions" for reject in rejects)
    assert all(reject["reasons"] for reject in rejects)
    dry_run_rejects = tmp_path / "dry-run" / "rejected-records.jsonl"
    assert dry_run_rejects.read_text() == (tmp_path / "rejects.jsonl").read_text()
