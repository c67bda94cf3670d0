"""Send closed uploads one at a time, in order, on a background thread."""

from __future__ import annotations

import logging
import queue
import threading
import typing as t
from dataclasses import dataclass

from target_customergauge_stream.client import UploadFailedError

if t.TYPE_CHECKING:
    import threading as threading_types

    from target_customergauge_stream.batching import Upload
    from target_customergauge_stream.client import DeliveryReport
    from target_customergauge_stream.ledger import DeliveryLedger

LOGGER = logging.getLogger(__name__)

_STOP = None
# Delivered keys wait in their uploads' rows until this many have gathered,
# then go into the ledger's index in one transaction (see
# `DeliveryLedger.mark_delivered`). On the benchmark input, 6,000 ran as fast
# as 10,000 and 20,000 with less memory.
KEYS_PER_LEDGER_UPDATE = 6_000
NOT_SENT_REASON = "not sent because an earlier upload failed or the run was stopped"


class UploadSender(t.Protocol):
    """Interface that the pipeline uses: the API client, or a dry run's stand-in."""

    stop_requested: threading_types.Event

    def send(self, body: bytes, label: str) -> DeliveryReport:
        """Deliver one body or raise `UploadFailedError`."""
        ...


@dataclass(frozen=True)
class Undelivered:
    """An upload that did not reach CustomerGauge, with its body and why."""

    upload: Upload
    body: bytes
    reason: str


class KeyIndexer:
    """Background thread that adds delivered keys to the ledger's index.

    Adding keys is the ledger's largest write, and its cost grows with the
    ledger, because each key goes to a random page of the index. The upload
    thread hands each batch over once the next upload is written ahead, so
    that the batch goes in while that upload is in flight. The ledger's lock
    keeps its writes in order, and only one batch is handed over at a time.
    """

    def __init__(
        self,
        ledger: DeliveryLedger,
        on_recorded: t.Callable[[Upload], None] | None,
    ) -> None:
        self._ledger = ledger
        self._on_recorded = on_recorded
        self._batch: list[Upload] = []
        # Uploads of batches whose add failed. They are reported with the next
        # add that succeeds, because each add takes every delivered upload's keys.
        self._unreported: list[Upload] = []
        self._requested = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self, uploads: list[Upload]) -> None:
        """Add the keys of these delivered uploads, after the batch before them.

        They go in on the indexer's thread, or on the calling thread when no
        thread can be started.
        """
        self.wait()
        if not self._ensure_thread():
            self._add(uploads)
            return
        self._batch = uploads
        self._idle.clear()
        self._requested.set()

    def wait(self) -> None:
        """Wait until the batch handed over last is in the index, or has failed."""
        self._idle.wait()

    def add_now(self, uploads: list[Upload]) -> None:
        """Add the keys of these uploads on the calling thread, after any batch."""
        self.wait()
        self._add(uploads)

    def close(self) -> None:
        """Wait for the last batch, retry one that failed, and end the thread."""
        self.wait()
        if self._unreported:
            self._add([])
        if self._thread is not None:
            self._closing = True
            self._requested.set()
            self._thread.join()
            self._thread = None

    def _ensure_thread(self) -> bool:
        """Start the thread unless it is running, and return whether it runs."""
        if self._thread is not None and self._thread.is_alive():
            return True
        self._closing = False
        self._requested.clear()
        thread = threading.Thread(
            target=self._run, name="customergauge-ledger-index", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:
            LOGGER.warning(
                "Could not start a thread to add delivered keys; the upload "
                "thread adds them itself."
            )
            self._thread = None
            return False
        self._thread = thread
        return True

    def _run(self) -> None:
        while True:
            self._requested.wait()
            self._requested.clear()
            if self._closing:
                return
            try:
                self._add(self._batch)
            except BaseException:
                # Ending the thread here would leave the next batch waiting,
                # whatever the error.
                LOGGER.exception("Adding delivered keys failed unexpectedly.")
            finally:
                self._batch = []
                self._idle.set()

    def _add(self, uploads: list[Upload]) -> None:
        try:
            self._ledger.add_delivered_keys()
        except Exception:
            # The keys stay in their delivered uploads' rows and in memory.
            # A later add puts them in the index, or else the next opening
            # of the ledger does.
            LOGGER.exception(
                "Could not add delivered keys to the ledger's index now; "
                "they are added with the next batch or when the ledger is "
                "next opened."
            )
            self._unreported.extend(uploads)
            return
        reported, self._unreported = [*self._unreported, *uploads], []
        if self._on_recorded is not None:
            for upload in reported:
                self._on_recorded(upload)


class UploadPipeline:
    """Post uploads in the order they were submitted, one in flight at a time.

    The reading thread builds the next body while the current one is in
    flight: `submit` returns at once unless an upload is already waiting,
    so at most one upload is in flight and one is ready behind it.

    With the delivery ledger, each upload goes through three steps on the
    upload thread: `drop_known` removes records delivered before (the
    upload is not sent when none is left, and `on_emptied` is called), the
    ledger writes it ahead, and once accepted the ledger records it as
    delivered. Its keys go into the ledger's index later, and `on_recorded`
    is called once they are there. With `keys_per_ledger_update` 1, that is
    before the next upload is looked up. With more, the keys wait until that
    many have gathered and then go in while a later upload is in flight.
    What is left, and a batch whose add failed, goes in at the end of the
    run.

    After an upload fails, nothing submitted after it is sent; those uploads
    are kept, with the failed one, in `undelivered`. The failure is raised
    from the next `submit` or from `finish`.
    """

    def __init__(
        self,
        client: UploadSender,
        on_accepted: t.Callable[[Upload, DeliveryReport], None],
        *,
        ledger: DeliveryLedger | None = None,
        drop_known: t.Callable[[Upload], int] | None = None,
        on_emptied: t.Callable[[Upload], None] | None = None,
        on_recorded: t.Callable[[Upload], None] | None = None,
        keys_per_ledger_update: int = KEYS_PER_LEDGER_UPDATE,
    ) -> None:
        self._client = client
        self._keys_per_ledger_update = keys_per_ledger_update
        self._ledger = ledger
        self._drop_known = drop_known
        self._on_emptied = on_emptied
        self._indexer = KeyIndexer(ledger, on_recorded) if ledger is not None else None
        self._on_accepted = on_accepted
        self._unrecorded: list[Upload] = []
        self._unrecorded_keys = 0
        self._queue: queue.Queue[tuple[Upload, bytes] | None] = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        self._failure: UploadFailedError | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._undelivered: list[Undelivered] = []
        self._submitting: Undelivered | None = None

    @property
    def failure(self) -> UploadFailedError | None:
        """The error that stopped delivery, if any."""
        return self._failure

    def take_undelivered(self) -> list[Undelivered]:
        """Remove and return the uploads that failed or were never sent.

        Call it only once the worker thread has ended (after `finish` or
        `stop`). An upload that a signal caught half-submitted is included.
        """
        with self._lock:
            undelivered, self._undelivered = self._undelivered, []
            if self._submitting is not None:
                undelivered.append(self._submitting)
                self._submitting = None
        return undelivered

    def submit(self, upload: Upload) -> None:
        """Queue an upload behind the one in flight.

        Raises:
            UploadFailedError: If an earlier upload failed.
        """
        self.raise_if_failed()
        body = upload.body()
        self._submitting = Undelivered(upload, body, NOT_SENT_REASON)
        upload.submitted = True
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="customergauge-upload", daemon=True
            )
            self._thread.start()
        self._queue.put((upload, body))
        self._submitting = None

    def finish(self) -> None:
        """Wait until every submitted upload has been sent or set aside.

        Raises:
            UploadFailedError: If an upload failed.
        """
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self.raise_if_failed()

    def stop(self) -> None:
        """Let the upload in flight end, send nothing more, and wait for that.

        The client makes no further retry of the upload in flight, so this
        returns within about one 'request_timeout'.
        """
        self._stopping.set()
        self._client.stop_requested.set()
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def raise_if_failed(self) -> None:
        """Raise the error of the upload that failed, if one did.

        Raises:
            UploadFailedError: If an upload failed.
        """
        if self._failure is not None:
            raise self._failure

    def _set_aside(self, upload: Upload, body: bytes, reason: str) -> None:
        self._replace_submitting(upload, None)
        with self._lock:
            self._undelivered.append(Undelivered(upload, body, reason))

    def _settle_failure(self, upload: Upload, *, ambiguous: bool) -> None:
        """Record in the ledger how a failed upload ended: in doubt, or not sent.

        If that write fails, the upload stays pending in the ledger, which
        the next run treats as in doubt: safe, never a duplicate.
        """
        if self._ledger is None or upload.ledger_id is None:
            return
        try:
            if ambiguous:
                self._ledger.mark_in_doubt(upload.ledger_id)
            else:
                self._ledger.release(upload.ledger_id)
        except Exception:
            LOGGER.exception(
                "Could not record the outcome of upload %s in the delivery "
                "ledger; it stays pending there.",
                upload.ledger_id,
            )

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._index_delivered_keys(now=True)
                if self._indexer is not None:
                    self._indexer.close()
                return
            upload, body = item
            if self._failure is not None or self._stopping.is_set():
                self._set_aside(upload, body, NOT_SENT_REASON)
                continue
            try:
                self._deliver(upload, body)
            except Exception as exc:
                # A bug here must not end this thread: the reading thread
                # would then wait on the queue forever.
                LOGGER.exception("Upload %d failed unexpectedly.", upload.sequence)
                if self._failure is None:
                    self._failure = UploadFailedError(
                        f"Upload {upload.sequence} of stream '{upload.stream}' "
                        f"failed unexpectedly: {exc!r}"
                    )

    def _index_delivered_keys(self, *, now: bool) -> None:
        """Hand the delivered uploads' keys to the index, many at a time.

        Args:
            now: Add them on this thread and wait for it. Otherwise they go
                in on the indexer's thread, and only once enough keys have
                gathered.
        """
        if self._indexer is None or not self._unrecorded:
            return
        if not now and self._unrecorded_keys < self._keys_per_ledger_update:
            return
        uploads, self._unrecorded = self._unrecorded, []
        self._unrecorded_keys = 0
        if now:
            self._indexer.add_now(uploads)
        else:
            self._indexer.start(uploads)

    def _replace_submitting(
        self, upload: Upload, replacement: Undelivered | None
    ) -> None:
        """Replace the half-submitted entry if it is this upload's."""
        with self._lock:
            if self._submitting is not None and self._submitting.upload is upload:
                self._submitting = replacement

    def _without_known_records(self, upload: Upload, body: bytes) -> bytes | None:
        """Drop records delivered before; return the body to send, or None."""
        if self._drop_known is None or not self._drop_known(upload):
            return body
        if upload.record_count == 0:
            self._replace_submitting(upload, None)
            if self._on_emptied is not None:
                self._on_emptied(upload)
            return None
        body = upload.body()
        self._replace_submitting(upload, Undelivered(upload, body, NOT_SENT_REASON))
        return body

    def _deliver(self, upload: Upload, original_body: bytes) -> None:
        label = (
            f"Upload {upload.sequence} of stream '{upload.stream}' "
            f"(input lines {upload.first_position}-{upload.last_position})"
        )
        body: bytes | None = original_body
        try:
            body = self._without_known_records(upload, original_body)
            if body is None:
                return
            upload.fragments.clear()
            if self._ledger is not None and upload.keys:
                # Written ahead in its own committed transaction, before any
                # byte is sent: a crash from here on leaves the upload in
                # doubt, never forgotten.
                upload.ledger_id = self._ledger.write_ahead(
                    upload.stream, upload.keys, body
                )
                # The index takes the keys of earlier uploads while this one
                # is in flight.
                self._index_delivered_keys(now=False)
        except Exception as exc:
            # Nothing was sent: what is left of the upload is saved, with the
            # keys that match its body.
            LOGGER.exception("%s could not be prepared for sending.", label)
            # The upload may be written ahead already. Taking it out again
            # keeps the ledger from treating it as in doubt.
            self._settle_failure(upload, ambiguous=False)
            if upload.record_count:
                reason = f"unexpected error: {exc!r}"
                self._set_aside(upload, body or original_body, reason)
            self._failure = UploadFailedError(f"{label} failed: {exc!r}")
            return
        try:
            report = self._client.send(body, label)
        except UploadFailedError as exc:
            # The reading thread re-raises it, so it is logged as an error here.
            LOGGER.error("%s", exc)
            self._settle_failure(upload, ambiguous=exc.ambiguous)
            self._set_aside(upload, body, str(exc))
            self._failure = exc
            return
        except Exception as exc:
            # A bug here must not leave the reading thread blocked on the queue.
            LOGGER.exception("%s failed with an unexpected error.", label)
            self._settle_failure(upload, ambiguous=True)
            self._set_aside(upload, body, f"unexpected error: {exc!r}")
            self._failure = UploadFailedError(f"{label} failed: {exc!r}")
            return
        if self._ledger is not None and upload.ledger_id is not None:
            try:
                self._ledger.mark_delivered(upload.ledger_id, add_keys=False)
            except Exception as exc:
                # Accepted, so its STATE may go out; the ledger still has it
                # pending, so the next run treats it as in doubt.
                LOGGER.exception(
                    "%s was accepted, but the delivery ledger could not record "
                    "it; it stays pending there as upload %s.",
                    label,
                    upload.ledger_id,
                )
                self._failure = UploadFailedError(
                    f"{label} was accepted, but the delivery ledger could not "
                    f"record it ({exc!r}). Resolve upload {upload.ledger_id} with "
                    f"'target-customergauge-stream-ledger resolve "
                    f"{upload.ledger_id} --delivered' before the next run."
                )
                self._replace_submitting(upload, None)
                self._on_accepted(upload, report)
                return
            self._unrecorded.append(upload)
            self._unrecorded_keys += len(upload.keys)
            if self._keys_per_ledger_update == 1:
                self._index_delivered_keys(now=True)
        # The reading thread may not have cleared this yet; an accepted upload
        # must never be saved for replay.
        self._replace_submitting(upload, None)
        self._on_accepted(upload, report)
