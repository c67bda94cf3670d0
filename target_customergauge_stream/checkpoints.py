"""Emit Singer STATE only once every record before it has been accepted."""

from __future__ import annotations

import sys
import threading
import typing as t

from singer_sdk.singerlib.json import serialize_json

if t.TYPE_CHECKING:
    from target_customergauge_stream.batching import Upload


class StateCheckpoints:
    """Hold STATE messages back until the records before them are accepted.

    A STATE message read at input line P may be emitted once no record from a
    line before P is still waiting: neither in an open upload nor in one that
    CustomerGauge has not accepted yet. Uploads register when they open and
    are released when accepted. An upload that fails is never released, so no
    STATE after its first record is ever emitted.

    Methods may be called from the reading thread and the upload thread.
    """

    def __init__(
        self, write: t.Callable[[dict[str, t.Any]], None] | None = None
    ) -> None:
        self._write = write or write_state_message
        self._lock = threading.Lock()
        self._waiting: dict[int, int] = {}
        self._pending: list[tuple[int, dict[str, t.Any]]] = []
        self._last_emitted: dict[str, t.Any] | None = None
        self.emitted_count = 0

    def hold(self, upload: Upload) -> None:
        """Register an upload that has just opened."""
        with self._lock:
            self._waiting[upload.sequence] = upload.first_position

    def release(self, upload: Upload) -> None:
        """Mark an upload accepted and emit the STATE that this completes."""
        with self._lock:
            self._waiting.pop(upload.sequence, None)
            self._emit_ready()

    def add_state(self, position: int, value: dict[str, t.Any]) -> None:
        """Queue a STATE message read at an input line, emitting it if it is safe."""
        with self._lock:
            self._pending.append((position, value))
            self._emit_ready()

    @property
    def pending_count(self) -> int:
        """Number of STATE messages read but not emitted yet."""
        with self._lock:
            return len(self._pending)

    def _emit_ready(self) -> None:
        oldest_waiting = min(self._waiting.values(), default=None)
        ready: dict[str, t.Any] | None = None
        while self._pending and (
            oldest_waiting is None or self._pending[0][0] < oldest_waiting
        ):
            ready = self._pending.pop(0)[1]
        if ready is not None and ready != self._last_emitted:
            self._write(ready)
            self._last_emitted = ready
            self.emitted_count += 1


def write_state_message(value: dict[str, t.Any]) -> None:
    """Write one STATE value to standard output, as Singer targets do.

    Numbers that the SDK read as `Decimal` are written back unchanged.
    """
    sys.stdout.write(serialize_json(value) + "\n")
    sys.stdout.flush()
