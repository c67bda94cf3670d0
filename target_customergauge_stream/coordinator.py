"""Delivery bookkeeping of one run: packing, sending, STATE, ledger, failures.

`DeliveryCoordinator` owns everything a record meets after the sink has
encoded it, so that the target module stays with the SDK's hooks. It is
created once per run from the resolved settings.
"""

from __future__ import annotations

import tempfile
import typing as t
from pathlib import Path

from target_customergauge_stream.batching import UploadPacker
from target_customergauge_stream.checkpoints import StateCheckpoints
from target_customergauge_stream.client import StreamApiClient, UploadFailedError
from target_customergauge_stream.dedup import Deduplicator, DryRunLookup
from target_customergauge_stream.delivery import (
    KEYS_PER_LEDGER_UPDATE,
    NOT_SENT_REASON,
    UploadPipeline,
)
from target_customergauge_stream.dry_run import DRY_RUN_REJECTS, DryRunClient
from target_customergauge_stream.failed_store import FailedUploadStore
from target_customergauge_stream.ledger import DeliveryLedger, LedgerError
from target_customergauge_stream.progress import RunProgress
from target_customergauge_stream.rejects import RejectsFile

if t.TYPE_CHECKING:
    import logging

    from target_customergauge_stream.batching import Upload
    from target_customergauge_stream.client import DeliveryReport
    from target_customergauge_stream.dedup import KeyLookup
    from target_customergauge_stream.settings import Settings


class DeliveryCoordinator:
    """Pack, deduplicate and send uploads, emit STATE, and save what fails.

    Args:
        settings: The run's resolved settings.
        logger: The target's logger.
        input_line: Returns the input line being processed.
    """

    def __init__(
        self,
        settings: Settings,
        logger: logging.Logger,
        input_line: t.Callable[[], int],
    ) -> None:
        self.settings = settings
        self.logger = logger
        self._input_line = input_line
        self.progress = RunProgress(logger, dry_run=settings.dry_run)
        # A dry run never moves a bookmark: STATE is computed but not written.
        self.checkpoints = StateCheckpoints(
            write=_discard_state if settings.dry_run else None
        )
        # A dry run keeps its rejects beside its bodies, away from the real file.
        self.rejects = RejectsFile(
            settings.dry_run_dir / DRY_RUN_REJECTS
            if settings.dry_run
            else settings.rejects_path
        )
        self.packer = UploadPacker(
            settings.max_upload_bytes,
            settings.batch_size_rows,
            on_open=self.checkpoints.hold,
        )
        self.dry_run_client = (
            DryRunClient(settings.dry_run_dir) if settings.dry_run else None
        )
        self.client: StreamApiClient | DryRunClient = (
            self.dry_run_client
            or StreamApiClient(
                settings, halt_on_ambiguous=settings.dedup and settings.halt_in_doubt
            )
        )
        self.ledger = DeliveryLedger(settings.ledger_url) if settings.dedup else None
        self.writing_ledger = self.ledger
        self._dry_run_folder: tempfile.TemporaryDirectory[str] | None = None
        lookup: KeyLookup | None = self.ledger
        if settings.dry_run and self.ledger is not None:
            # A dry run reads the ledger, to show what it would skip, but
            # writes the keys it pretends to deliver to a throwaway ledger.
            self._dry_run_folder = tempfile.TemporaryDirectory(
                prefix="customergauge-dry-run-"
            )
            self.writing_ledger = DeliveryLedger(
                f"sqlite:///{Path(self._dry_run_folder.name) / 'ledger.sqlite'}",
                warn_if_new=False,
            )
            lookup = DryRunLookup(self.ledger, self.writing_ledger)
        self.dedup = (
            Deduplicator(lookup, resend_changed=settings.resend_changed)
            if lookup is not None
            else None
        )
        self.pipeline = UploadPipeline(
            self.client,
            self._on_upload_accepted,
            ledger=self.writing_ledger,
            drop_known=self._drop_known_records if self.dedup else None,
            on_emptied=self._on_upload_emptied,
            on_recorded=self.dedup.forget_upload if self.dedup else None,
            # A changed record sent again must find its newest hash in the
            # ledger's index at once: a batch would leave the older one there.
            keys_per_ledger_update=1
            if settings.resend_changed
            else KEYS_PER_LEDGER_UPDATE,
        )
        self.failed_store = FailedUploadStore(settings.failed_uploads_dir)

    @property
    def input_line(self) -> int:
        """Input line of the message being processed, from 1."""
        return self._input_line()

    def settle_unresolved_uploads(self) -> None:
        """Deal with uploads an earlier run left in doubt, before sending anything.

        Raises:
            LedgerError: With 'in_doubt: halt', or when a resent body is
                still in doubt.
        """
        if self.ledger is not None and not self.settings.dry_run:
            self._settle_unresolved(self.ledger)
        if self.dedup is not None:
            # Read after settling: released uploads' records may be sent again.
            self.dedup.reload_unresolved()

    def _settle_unresolved(self, ledger: DeliveryLedger) -> None:
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
        """Hand an upload to the pipeline, which drops records already delivered."""
        if self.dedup is not None:
            self.dedup.release_recorded()
        self.pipeline.submit(upload)

    def _drop_known_records(self, upload: Upload) -> int:
        """Remove records already in the ledger; runs on the upload thread."""
        if self.dedup is None:
            return 0
        skipped = self.dedup.drop_known(upload)
        if skipped:
            self.progress.count_skipped(upload.stream, skipped)
        return skipped

    def _on_upload_emptied(self, upload: Upload) -> None:
        """Count an upload whose records were all delivered before as handled."""
        self.checkpoints.release(upload)

    def _on_upload_accepted(self, upload: Upload, report: DeliveryReport) -> None:
        self.progress.record_accepted(upload, report)
        self.checkpoints.release(upload)

    def finish(self) -> None:
        """Wait for the last uploads, close everything and log the summary.

        Raises:
            UploadFailedError: If an upload failed; undelivered uploads are
                saved first.
        """
        try:
            self.pipeline.finish()
        except UploadFailedError:
            self.abort()
            raise
        self.client.close()
        self.rejects.close()
        if self.ledger is not None:
            self.ledger.close()
        self._discard_dry_run_keys()
        self.progress.log_summary()
        if self.dry_run_client is not None:
            self.dry_run_client.write_summary(self.progress.stream_fields())
            self.logger.info(
                "Dry run: %d upload bodies written to '%s'; nothing was sent and "
                "no STATE was emitted.",
                self.dry_run_client.uploads,
                self.dry_run_client.folder,
            )

    def _discard_dry_run_keys(self) -> None:
        """Delete the throwaway ledger of a dry run."""
        if self._dry_run_folder is None:
            return
        if self.writing_ledger is not None:
            self.writing_ledger.close()
        self._dry_run_folder.cleanup()
        self._dry_run_folder = None

    def abort(self) -> None:
        """Stop after a failed upload: save what was not delivered, log the summary."""
        self._stop_pipeline()
        self.progress.log_summary()
        self._discard_dry_run_keys()

    def stop_for_signal(self) -> None:
        """Let the upload in flight end, save the rest and log the summary."""
        self.pipeline.stop()
        self.client.close()
        self._save_undelivered()
        self.progress.log_summary()
        self._discard_dry_run_keys()

    def deliver_before_failure(self, error: BaseException) -> None:
        """Send what was read before a failure, so that only bad input is left.

        Records that came before the failing input line are uploaded and the
        STATE they complete is emitted; nothing after that line is sent. After
        a failed upload nothing more is sent at all, and every upload that
        was not delivered is saved to 'failed_uploads_dir'.
        """
        if isinstance(error, UploadFailedError) or self.pipeline.failure is not None:
            self._stop_pipeline()
            self.progress.log_summary()
            self._discard_dry_run_keys()
            return
        # Each upload leaves the packer only once the pipeline has it, so
        # that a failure or a signal in between cannot lose it.
        uploads = self.packer.close_all()
        self.logger.info(
            "Stopping at input line %d; sending the %d records read before it.",
            self.input_line,
            sum(upload.record_count for upload in uploads),
        )
        try:
            for upload in uploads:
                self.submit_upload(upload)
                self.packer.discard_closed(upload)
            self.pipeline.finish()
        except UploadFailedError:
            self.logger.error("Could not deliver the records read before the failure.")
            self._stop_pipeline()
        else:
            self.client.close()
        self.progress.log_summary()
        self._discard_dry_run_keys()

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
        # An upload handed to the pipeline is the pipeline's to report. One
        # that is not among those above needed no saving (accepted, or all
        # its records known), even if a signal came before the packer let
        # go of it.
        for upload in self.packer.take_all():
            if (
                upload.sequence not in saved
                and not upload.submitted
                and upload.record_count
            ):
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


def _discard_state(value: dict[str, t.Any]) -> None:
    """Drop a STATE message: a dry run must not move a bookmark."""
