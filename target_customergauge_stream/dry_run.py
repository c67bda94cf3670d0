"""A stand-in for the API client that writes each upload body to a folder."""

from __future__ import annotations

import json
import threading
import typing as t

from target_customergauge_stream.client import DeliveryReport
from target_customergauge_stream.responses import Outcome

if t.TYPE_CHECKING:
    from pathlib import Path


DRY_RUN_REJECTS = "rejected-records.jsonl"


class DryRunClient:
    """Write each body, byte for byte, as `upload-000001.xml`, ... instead of sending.

    Bodies, summary and rejects of an earlier dry run in the same folder are
    deleted first, so the folder always shows one run.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.stop_requested = threading.Event()
        self.uploads = 0
        self.bytes = 0
        folder.mkdir(parents=True, exist_ok=True)
        leftovers = [folder / "summary.json", folder / DRY_RUN_REJECTS]
        for old in [*folder.glob("upload-*.xml"), *leftovers]:
            old.unlink(missing_ok=True)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line; a dry run has none."""
        return ()

    def send(self, body: bytes, label: str) -> DeliveryReport:
        """Write one body to the folder and report it as accepted."""
        self.uploads += 1
        self.bytes += len(body)
        (self.folder / f"upload-{self.uploads:06d}.xml").write_bytes(body)
        return DeliveryReport(Outcome.ACCEPTED, 0, 1, 0.0)

    def write_summary(self, streams: dict[str, dict[str, t.Any]]) -> None:
        """Write `summary.json`: totals and the counts of each stream."""
        summary = {"uploads": self.uploads, "bytes": self.bytes, "streams": streams}
        (self.folder / "summary.json").write_text(
            json.dumps(summary, indent=2, default=str), encoding="utf-8"
        )

    def close(self) -> None:
        """Nothing to close."""
