"""The Singer target: settings and the sink class, plus delivery bookkeeping."""

from __future__ import annotations

import signal
import sys
import typing as t

from singer_sdk import Target
from singer_sdk.exceptions import ConfigValidationError

from target_customergauge_stream.batching import UploadPacker
from target_customergauge_stream.checkpoints import StateCheckpoints
from target_customergauge_stream.client import StreamApiClient, UploadFailedError
from target_customergauge_stream.dedup import Deduplicator
from target_customergauge_stream.delivery import NOT_SENT_REASON, UploadPipeline
from target_customergauge_stream.dry_run import DRY_RUN_REJECTS, DryRunClient
from target_customergauge_stream.failed_store import FailedUploadStore
from target_customergauge_stream.ledger import DeliveryLedger, LedgerError
from target_customergauge_stream.progress import RunProgress
from target_customergauge_stream.reader import CountingSingerReader
from target_customergauge_stream.rejects import RejectsFile
from target_customergauge_stream.settings import (
    CONFIG_SCHEMA,
    resolve_settings,
    validate_config,
)
from target_customergauge_stream.sinks import CustomerGaugeStreamSink

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    from pathlib import PurePath
    from types import FrameType

    from target_customergauge_stream.batching import Upload
    from target_customergauge_stream.client import DeliveryReport


SWITCH_INTERVAL_SECONDS = 0.0005


class TargetCustomerGaugeStream(Target):
    """Singer target that uploads records to CustomerGauge's Stream API."""

    name = "target-customergauge-stream"
    package_name = "target-customergauge-stream"
    config_jsonschema = CONFIG_SCHEMA
    default_sink_class = CustomerGaugeStreamSink
    message_reader_class = CountingSingerReader

    def __init__(
        self,
        *,
        config: dict[str, t.Any] | PurePath | str | list[PurePath | str] | None = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        setup_mapper: bool = True,
        message_reader: CountingSingerReader | None = None,
    ) -> None:
        super().__init__(
            config=config,
            parse_env_config=parse_env_config,
            validate_config=validate_config,
            setup_mapper=setup_mapper,
            message_reader=message_reader,
        )
        # Uploads go out one at a time in input order, so sinks never drain
        # in parallel.
        self.max_parallelism = 1
        # The upload thread blocks on the network and the ledger many times
        # per upload, and each time it must win the GIL back from the busy
        # reading thread. With CPython's default 5 ms interval those waits
        # made a 100,000-record run with the ledger about 25% slower
        # (measured with benchmarks/run.py on a 2-core machine).
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        self.settings = resolve_settings(self.config)
        self.progress = RunProgress(self.logger, dry_run=self.settings.dry_run)
        # A dry run never moves a bookmark: STATE is computed but not written.
        self.checkpoints = StateCheckpoints(
            write=_discard_state if self.settings.dry_run else None
        )
        # A dry run keeps its rejects beside its bodies, away from the real file.
        self.rejects = RejectsFile(
            self.settings.dry_run_dir / DRY_RUN_REJECTS
            if self.settings.dry_run
            else self.settings.rejects_path
        )
        self.packer = UploadPacker(
            self.settings.max_upload_bytes,
            self.settings.batch_size_rows,
            on_open=self.checkpoints.hold,
        )
        self.dry_run_client = (
            DryRunClient(self.settings.dry_run_dir) if self.settings.dry_run else None
        )
        self.client: StreamApiClient | DryRunClient = (
            self.dry_run_client
            or StreamApiClient(
                self.settings,
                halt_on_ambiguous=self.settings.dedup and self.settings.halt_in_doubt,
            )
        )
        self.ledger = (
            DeliveryLedger(self.settings.ledger_url) if self.settings.dedup else None
        )
        self.dedup = (
            Deduplicator(self.ledger, resend_changed=self.settings.resend_changed)
            if self.ledger is not None
            else None
        )
        # A dry run reads the ledger, to show what it would skip, but never
        # writes to it.
        writing_ledger = None if self.settings.dry_run else self.ledger
        self.pipeline = UploadPipeline(
            self.client,
            self._on_upload_accepted,
            ledger=writing_ledger,
            on_written_ahead=self.dedup.forget_upload if self.dedup else None,
        )
        self.pipeline.keys_may_exist = self.settings.resend_changed
        self.failed_store = FailedUploadStore(self.settings.failed_uploads_dir)
        reader = t.cast("CountingSingerReader", self.message_reader)
        reader.before_failure = self._deliver_before_failure
        if writing_ledger is not None:
            self._settle_unresolved_uploads(writing_ledger)

    def _settle_unresolved_uploads(self, ledger: DeliveryLedger) -> None:
        """Deal with uploads an earlier run left in doubt, before sending anything.

        Raises:
            LedgerError: With 'in_doubt: halt', or when a resent body is
                still in doubt.
        """
        unresolved = ledger.unresolved()
        if not unresolved:
            return
        if self.settings.halt_in_doubt:
            listing = "; ".join(
                f"{item.upload_id} ({item.record_count} records of stream "
                f"'{item.stream}', {item.created_at:%Y-%m-%d %H:%M:%S})"
                for item in unresolved
            )
            msg = (
                f"The delivery ledger at {ledger.describe()} holds {len(unresolved)} "
                f"uploads in doubt: {listing}. An earlier run stopped without "
                f"learning whether CustomerGauge received them, and sending them "
                f"again could survey customers twice. Check in CustomerGauge, then "
                f"run 'target-customergauge-stream-ledger resolve UPLOAD_ID "
                f"--delivered' or '--release' for each; or set 'in_doubt: resend' "
                f"to send each byte-identical body again."
            )
            raise LedgerError(msg)
        for item in unresolved:
            label = f"In-doubt upload {item.upload_id} of stream '{item.stream}'"
            try:
                self.client.send(item.body or b"", label)
            except UploadFailedError as exc:
                if exc.ambiguous:
                    ledger.mark_in_doubt(item.upload_id)
                    msg = f"{exc} It stays in doubt in the delivery ledger."
                    raise LedgerError(msg) from None
                ledger.release(item.upload_id)
                self.logger.warning(
                    "%s was rejected when sent again, so its records are released "
                    "and will be sent when the tap reads them again: %s",
                    label,
                    exc,
                )
                continue
            ledger.mark_delivered(item.upload_id)
            self.logger.info("%s was sent again and is now delivered.", label)

    def submit_upload(self, upload: Upload) -> None:
        """Drop records already in the ledger, then send what is left of an upload."""
        if self.dedup is not None:
            skipped = self.dedup.drop_known(upload)
            if skipped:
                self.progress.stream(upload.stream).skipped_delivered += skipped
            if upload.record_count == 0:
                self.dedup.forget_upload(upload)
                self.checkpoints.release(upload)
                return
        self.pipeline.submit(upload)

    @property
    def input_line(self) -> int:
        """Input line of the message being processed, from 1."""
        return t.cast("CountingSingerReader", self.message_reader).line_number

    # The SDK's own config check quotes invalid values in its messages, which
    # would print a mistyped secret; this one names settings only.
    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        errors = validate_config(self.config, schema)
        if errors and raise_errors:
            msg = "Config validation failed"
            raise ConfigValidationError(msg, errors=errors, schema=schema)
        for error in errors:
            self.logger.warning("%s", error)
        return errors

    # STATE is emitted by `StateCheckpoints` once CustomerGauge has accepted
    # every record before it, never by the SDK's drain, which would run ahead
    # of uploads still in flight.
    @override
    def _process_state_message(self, message_dict: dict[str, t.Any]) -> None:
        self._assert_line_requires(message_dict, requires={"value"})
        self.checkpoints.add_state(self.input_line, message_dict["value"])

    def _on_upload_accepted(self, upload: Upload, report: DeliveryReport) -> None:
        self.progress.record_accepted(upload, report)
        self.checkpoints.release(upload)

    @override
    def process_endofpipe(self) -> None:
        try:
            super().process_endofpipe()
            self.pipeline.finish()
        except UploadFailedError:
            self._stop_pipeline()
            self.progress.log_summary()
            raise
        self.client.close()
        self.rejects.close()
        if self.ledger is not None:
            self.ledger.close()
        self.progress.log_summary()
        if self.dry_run_client is not None:
            self.dry_run_client.write_summary(self.progress.stream_fields())
            self.logger.info(
                "Dry run: %d upload bodies written to '%s'; nothing was sent and "
                "no STATE was emitted.",
                self.dry_run_client.uploads,
                self.dry_run_client.folder,
            )

    def _deliver_before_failure(self, error: BaseException) -> None:
        """Send what was read before a failure, so that only bad input is left.

        Records that came before the failing input line are uploaded and the
        STATE they complete is emitted; nothing after that line is sent. After
        a failed upload nothing more is sent at all, and every upload that
        was not delivered is saved to 'failed_uploads_dir'.
        """
        if isinstance(error, UploadFailedError) or self.pipeline.failure is not None:
            self._stop_pipeline()
            self.progress.log_summary()
            return
        uploads = self.packer.take_all()
        self.logger.info(
            "Stopping at input line %d; sending the %d records read before it.",
            self.input_line,
            sum(upload.record_count for upload in uploads),
        )
        try:
            for upload in uploads:
                self.submit_upload(upload)
            self.pipeline.finish()
        except UploadFailedError:
            self.logger.error("Could not deliver the records read before the failure.")
            self._stop_pipeline()
        else:
            self.client.close()
        self.progress.log_summary()

    def _stop_pipeline(self) -> None:
        """Stop delivery after a failure and save every undelivered upload."""
        self.pipeline.stop()
        self.client.close()
        self._save_undelivered()

    def _save_undelivered(self) -> None:
        saved: dict[int, tuple[int, str]] = {}
        for item in self.pipeline.take_undelivered():
            if item.upload.sequence not in saved:
                self.failed_store.save(item.upload, item.body, item.reason)
                saved[item.upload.sequence] = (item.upload.record_count, item.reason)
        for upload in self.packer.take_all():
            if upload.sequence not in saved and upload.record_count:
                self.failed_store.save(upload, upload.body(), NOT_SENT_REASON)
                saved[upload.sequence] = (upload.record_count, NOT_SENT_REASON)
        if not saved:
            return
        self.logger.error(
            "Saved %d undelivered uploads (%d records) to '%s'. To recover, re-run "
            "the sync from its last STATE, which reads those records again; "
            "resolve any upload in doubt first (target-customergauge-stream-ledger "
            "list). Only when a re-run is not possible, send the saved uploads "
            "with 'target-customergauge-stream-replay'. With 'dedup: false', "
            "doing both uploads the same records twice.",
            len(saved),
            sum(count for count, _ in saved.values()),
            self.failed_store.folder,
        )

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """Stop on SIGINT or SIGTERM without losing or half-sending anything.

        Reading stops at once. The upload in flight may finish, within about
        'request_timeout', and the STATE it completes is emitted. Whatever was
        read but not delivered is saved to 'failed_uploads_dir', and the
        target exits with status 128 + the signal number, as shells do.
        """
        name = signal.Signals(signum).name
        self.logger.warning(
            "Received %s: stopping after the upload in flight; nothing more is "
            "read or sent.",
            name,
        )
        self.pipeline.stop()
        self.client.close()
        self._save_undelivered()
        self.progress.log_summary()
        self.logger.warning("Stopped by %s.", name)
        sys.exit(128 + signum)


def _discard_state(value: dict[str, t.Any]) -> None:
    """Drop a STATE message: a dry run must not move a bookmark."""


if __name__ == "__main__":
    TargetCustomerGaugeStream.cli()
