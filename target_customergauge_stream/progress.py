"""Counts per stream and the log lines that let people follow a run."""

from __future__ import annotations

import threading
import time
import typing as t
from collections import Counter
from dataclasses import asdict, dataclass, field

if t.TYPE_CHECKING:
    import logging

    from target_customergauge_stream.batching import Upload
    from target_customergauge_stream.client import DeliveryReport


@dataclass
class StreamProgress:
    """Counts of one stream's records so far in this run.

    Attributes:
        received: Records read for the stream.
        rejected: Records set aside as invalid.
        skipped_delivered: Records skipped because they were delivered before.
        uploaded: Records that CustomerGauge accepted.
        uploads: Accepted uploads.
        bytes: Bytes of accepted upload bodies.
        retries: Requests beyond the first one, over all uploads.
        upload_seconds: Time spent on the stream's uploads, retries included.
        reject_reasons: How often each reason made a record invalid.
    """

    received: int = 0
    rejected: int = 0
    skipped_delivered: int = 0
    uploaded: int = 0
    uploads: int = 0
    bytes: int = 0
    retries: int = 0
    upload_seconds: float = 0.0
    reject_reasons: Counter[str] = field(default_factory=Counter)

    def as_fields(self) -> dict[str, t.Any]:
        """Return the counts as plain values, with the five top reject reasons."""
        fields = asdict(self)
        fields["reject_reasons"] = dict(self.reject_reasons.most_common(5))
        return fields


class RunProgress:
    """Collect counts per stream and write the per-upload and summary lines.

    Every line carries its numbers as `extra` fields too, so that the Singer
    SDK's structured (JSON) logging shows them as fields.
    """

    def __init__(self, logger: logging.Logger, *, dry_run: bool = False) -> None:
        self._logger = logger
        # In a dry run nothing reaches CustomerGauge, so the log lines read
        # "written" instead of "accepted".
        self._verb = "Wrote (dry run)" if dry_run else "Uploaded"
        self._destination = "written by the dry run" if dry_run else "accepted"
        self._run_outcome = (
            "written by the dry run" if dry_run else "accepted by CustomerGauge"
        )
        self._streams: dict[str, StreamProgress] = {}
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.records_accepted = 0

    def stream(self, name: str) -> StreamProgress:
        """Return the counters of a stream, created on first use."""
        with self._lock:
            return self._streams.setdefault(name, StreamProgress())

    def count_skipped(self, stream: str, count: int) -> None:
        """Count records skipped as delivered; both threads call it."""
        progress = self.stream(stream)
        with self._lock:
            progress.skipped_delivered += count

    def record_accepted(self, upload: Upload, report: DeliveryReport) -> None:
        """Count an accepted upload and log one line about it."""
        progress = self.stream(upload.stream)
        with self._lock:
            progress.uploaded += upload.record_count
            progress.uploads += 1
            progress.bytes += upload.size
            progress.retries += report.attempts - 1
            progress.upload_seconds += report.seconds
            self.records_accepted += upload.record_count
            total = self.records_accepted
        self._logger.info(
            "%s %d records (%d bytes) of stream '%s' in %.2f s: upload %d, "
            "%d records %s so far.",
            self._verb,
            upload.record_count,
            upload.size,
            upload.stream,
            report.seconds,
            upload.sequence,
            total,
            self._destination,
            extra={
                "stream_name": upload.stream,
                "upload": upload.sequence,
                "records": upload.record_count,
                "bytes": upload.size,
                "seconds": round(report.seconds, 3),
                "attempts": report.attempts,
                "records_accepted_total": total,
            },
        )

    def stream_fields(self) -> dict[str, dict[str, t.Any]]:
        """Return every stream's counts as plain values."""
        with self._lock:
            return {
                name: progress.as_fields() for name, progress in self._streams.items()
            }

    def log_summary(self) -> None:
        """Log one summary line per stream, for the end of a run."""
        elapsed = time.monotonic() - self._started
        streams = self.stream_fields()
        for name, fields in streams.items():
            self._logger.info(
                "Summary of stream '%s': %d records received, %d rejected, %d "
                "skipped as already delivered, %d uploaded in %d uploads "
                "(%d bytes, %d retries, %.1f s uploading).",
                name,
                fields["received"],
                fields["rejected"],
                fields["skipped_delivered"],
                fields["uploaded"],
                fields["uploads"],
                fields["bytes"],
                fields["retries"],
                fields["upload_seconds"],
                extra={"stream_name": name, **fields},
            )
            if fields["reject_reasons"]:
                reasons = "; ".join(
                    f"{count} x {reason}"
                    for reason, count in fields["reject_reasons"].items()
                )
                self._logger.info(
                    "Most frequent reasons for rejects in stream '%s': %s.",
                    name,
                    reasons,
                    extra={"stream_name": name},
                )
        self._logger.info(
            "Run finished in %.1f s: %d records %s.",
            elapsed,
            sum(fields["uploaded"] for fields in streams.values()),
            self._run_outcome,
            extra={"seconds": round(elapsed, 3)},
        )
