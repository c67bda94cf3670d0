"""Write invalid records that are set aside, with their reasons, as JSON Lines."""

from __future__ import annotations

import threading
import typing as t

from singer_sdk.singerlib.json import serialize_json

if t.TYPE_CHECKING:
    from pathlib import Path


class RejectsFile:
    """Append one JSON line per rejected record: stream, input line, reasons, record.

    The file is opened on the first reject, so a run without rejects leaves
    no file behind. It holds personal data; the log never does.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: t.TextIO | None = None
        self._lock = threading.Lock()

    def write(
        self, stream: str, input_line: int, reasons: list[str], record: dict[str, t.Any]
    ) -> None:
        """Append one rejected record."""
        line = serialize_json(
            {
                "stream": stream,
                "input_line": input_line,
                "reasons": reasons,
                "record": record,
            },
            ensure_ascii=False,
        )
        with self._lock:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("a", encoding="utf-8")
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        """Close the file if it was opened."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
