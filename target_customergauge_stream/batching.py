"""Pack encoded records into uploads that respect the Stream API's caps."""

from __future__ import annotations

import itertools
import typing as t
from dataclasses import dataclass, field

from target_customergauge_stream.payload import BODY_OVERHEAD, build_body


class RecordTooLargeError(ValueError):
    """One record does not fit in an upload even on its own."""

    def __init__(self, stream: str, position: int, size: int, max_bytes: int) -> None:
        super().__init__(
            f"Record at input line {position} of stream '{stream}' is {size:,} bytes "
            f"as XML, which with the XML declaration and <records> wrapper exceeds "
            f"the {max_bytes:,}-byte cap of one upload ('max_upload_bytes'). "
            f"Shorten its longest fields, for example with a stream map, or drop "
            f"the record. The records before it were delivered; nothing after it "
            f"was sent."
        )
        self.stream = stream
        self.position = position
        self.size = size
        self.max_bytes = max_bytes


@dataclass
class Upload:
    """The records of one stream that go out in one POST.

    Attributes:
        sequence: Number of the upload within the run, from 1, in the order
            uploads were opened.
        stream: Stream the records came from.
        first_position: Input line of the first record.
        last_position: Input line of the last record.
        fragments: Encoded `<record>` elements, emptied once the body is sent.
        size: Exact size of the body in bytes.
        record_count: Number of records in the upload.
        keys: With the delivery ledger on, the (key hash, record hash) of
            each record, in the order of `fragments`; empty otherwise.
        ledger_id: The ledger's id of the upload once it is written ahead.
        submitted: Set once the upload is handed to the upload pipeline;
            from then on only the pipeline changes it.
    """

    sequence: int
    stream: str
    first_position: int
    last_position: int = 0
    fragments: list[bytes] = field(default_factory=list)
    size: int = BODY_OVERHEAD
    record_count: int = 0
    keys: list[tuple[str, str]] = field(default_factory=list)
    ledger_id: str | None = None
    submitted: bool = False

    def body(self) -> bytes:
        """Return the complete request body."""
        return build_body(self.fragments)

    def remove_record(self, index: int) -> None:
        """Take one record out; rebuild the body afterwards."""
        self.size -= len(self.fragments.pop(index))
        if self.keys:
            self.keys.pop(index)
        self.record_count -= 1


class UploadPacker:
    """Fill one open upload per stream and close it when the next record won't fit.

    An upload closes when it holds `max_records` records, or when the next
    record would take its body over `max_bytes`. So uploads are as full as
    the caps allow: N small records take ceil(N / max_records) uploads.
    Closed uploads wait in the packer until they are taken for sending.
    """

    def __init__(
        self,
        max_bytes: int,
        max_records: int,
        on_open: t.Callable[[Upload], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_records = max_records
        self._on_open = on_open
        self._open: dict[str, Upload] = {}
        self._closed: dict[str, list[Upload]] = {}
        self._sequence = itertools.count(1)

    def add(
        self,
        stream: str,
        fragment: bytes,
        position: int,
        key: tuple[str, str] | None = None,
    ) -> Upload:
        """Add one encoded record to the stream's open upload, and return that upload.

        Raises:
            RecordTooLargeError: If the record alone exceeds `max_bytes`.
        """
        size = len(fragment)
        if BODY_OVERHEAD + size > self.max_bytes:
            raise RecordTooLargeError(stream, position, size, self.max_bytes)

        upload = self._open.get(stream)
        if upload is not None and upload.size + size > self.max_bytes:
            self.close(stream)
            upload = None
        if upload is None:
            upload = Upload(next(self._sequence), stream, first_position=position)
            self._open[stream] = upload
            if self._on_open is not None:
                self._on_open(upload)

        upload.fragments.append(fragment)
        if key is not None:
            upload.keys.append(key)
        upload.record_count += 1
        upload.size += size
        upload.last_position = position
        if upload.record_count >= self.max_records:
            self.close(stream)
        return upload

    def close(self, stream: str) -> None:
        """Close the stream's open upload, if it has one."""
        upload = self._open.pop(stream, None)
        if upload is not None:
            self._closed.setdefault(stream, []).append(upload)

    def has_closed(self, stream: str) -> bool:
        """Tell whether closed uploads of the stream wait to be sent."""
        return bool(self._closed.get(stream))

    def take_closed(self, stream: str) -> list[Upload]:
        """Remove and return the stream's closed uploads, oldest first."""
        return self._closed.pop(stream, [])

    def peek_closed(self, stream: str) -> Upload | None:
        """Return the stream's oldest closed upload without removing it."""
        closed = self._closed.get(stream)
        return closed[0] if closed else None

    def discard_closed(self, upload: Upload) -> None:
        """Remove a closed upload once it has been handed on."""
        closed = self._closed.get(upload.stream, [])
        if upload in closed:
            closed.remove(upload)
        if not closed:
            self._closed.pop(upload.stream, None)

    def close_all(self) -> list[Upload]:
        """Close every open upload and return all closed ones, oldest first.

        They stay in the packer until `discard_closed` removes each.
        """
        for stream in list(self._open):
            self.close(stream)
        uploads = [upload for closed in self._closed.values() for upload in closed]
        return sorted(uploads, key=lambda upload: upload.sequence)

    def take_all(self) -> list[Upload]:
        """Close every open upload and remove and return all, oldest first."""
        uploads = self.close_all()
        self._closed.clear()
        return uploads

    def count(self, stream: str) -> int:
        """Return how many records of the stream wait in the packer."""
        open_upload = self._open.get(stream)
        waiting = open_upload.record_count if open_upload else 0
        return waiting + sum(
            upload.record_count for upload in self._closed.get(stream, [])
        )
