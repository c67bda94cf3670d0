"""Keep the exact bodies of uploads that were not delivered, for replay.

Each upload becomes two files in the folder: `<name>.xml`, the body exactly
as it was or would have been sent, and `<name>.json`, a small description
(stream, records, bytes, input lines, error, time). Names sort in the order
the uploads were meant to go out, so replaying in name order keeps it.
No secret is written: the description holds no header and no config.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import typing as t
from dataclasses import dataclass

if t.TYPE_CHECKING:
    from pathlib import Path

    from target_customergauge_stream.batching import Upload


@dataclass(frozen=True)
class SavedUpload:
    """One saved upload: its body file and its description."""

    body_path: Path
    description: dict[str, t.Any]

    @property
    def description_path(self) -> Path:
        """Path of the JSON description next to the body."""
        return self.body_path.with_suffix(".json")

    def remove(self) -> None:
        """Delete the body and its description."""
        self.body_path.unlink(missing_ok=True)
        self.description_path.unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


class FailedUploadStore:
    """A folder of undelivered upload bodies with their descriptions."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._run_id = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y%m%dT%H%M%S%fZ"
        )

    def save(self, upload: Upload, body: bytes, error: str) -> SavedUpload:
        """Write one upload's body, then its description, and return both."""
        self.folder.mkdir(parents=True, exist_ok=True)
        body_path = self.folder / f"{self._run_id}-{upload.sequence:06d}.xml"
        description = {
            "stream": upload.stream,
            "record_count": upload.record_count,
            "bytes": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "first_input_line": upload.first_position,
            "last_input_line": upload.last_position,
            "error": error,
            "failed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            # Hashes only, for the delivery ledger at replay: the keys
            # themselves are personal data.
            "keys": [list(pair) for pair in upload.keys],
            "ledger_id": upload.ledger_id,
        }
        _write_atomically(body_path, body)
        _write_atomically(
            body_path.with_suffix(".json"),
            json.dumps(description, indent=2).encode("utf-8"),
        )
        return SavedUpload(body_path, description)

    def list(self) -> list[SavedUpload]:
        """Return the saved uploads in the order they were meant to be sent.

        Bodies whose description is missing or unreadable are listed with an
        empty description, so that nothing saved is skipped silently.
        """
        if not self.folder.is_dir():
            return []
        saved = []
        for body_path in sorted(self.folder.glob("*.xml")):
            description_path = body_path.with_suffix(".json")
            try:
                description = json.loads(description_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                description = {}
            saved.append(SavedUpload(body_path, description))
        return saved
