"""Skip records that were delivered before or already appear in this run."""

from __future__ import annotations

import threading
import typing as t
from dataclasses import dataclass

from target_customergauge_stream.bloom import DigestBloomFilter

if t.TYPE_CHECKING:
    from target_customergauge_stream.batching import Upload
    from target_customergauge_stream.ledger import DeliveryLedger


@dataclass(frozen=True)
class Decision:
    """Decision on one record: add it, skip it, or replace an earlier one."""

    add: bool
    replaces: Upload | None = None


ADD = Decision(add=True)
SKIP = Decision(add=False)


class Deduplicator:
    """Decide per record, and per closed upload, what is new.

    Within a run, a key seen before is caught in memory while its upload
    has not been written ahead yet; after that, the ledger catches it. Only
    keys of uploads not yet written ahead are held in memory, so memory does
    not grow with the input.
    """

    def __init__(self, ledger: DeliveryLedger, *, resend_changed: bool) -> None:
        self.ledger = ledger
        self.resend_changed = resend_changed
        self._lock = threading.Lock()
        # Per stream, every key the ledger may hold: a key the filter has
        # never seen needs no database lookup, which is most keys of a sync.
        self._filters: dict[str, DigestBloomFilter] = {}
        # stream -> key hash -> (record hash, upload holding it)
        self._unwritten: dict[str, dict[str, tuple[str, Upload]]] = {}

    def decide(self, stream: str, key: str, digest: str) -> Decision:
        """Decide on a record by what this run has seen of its key so far."""
        with self._lock:
            earlier = self._unwritten.get(stream, {}).get(key)
        if earlier is None:
            return ADD
        earlier_digest, upload = earlier
        if self.resend_changed and earlier_digest != digest:
            return Decision(add=True, replaces=upload)
        return SKIP

    def remember(self, stream: str, key: str, digest: str, upload: Upload) -> None:
        """Note that a record's key now sits in an upload not written ahead yet."""
        with self._lock:
            self._unwritten.setdefault(stream, {})[key] = (digest, upload)

    def forget_upload(self, upload: Upload) -> None:
        """Drop an upload's keys from memory once the ledger contains them."""
        bloom = self._filter(upload.stream)
        with self._lock:
            keys = self._unwritten.get(upload.stream, {})
            for key, _ in upload.keys:
                bloom.add(key)
                if key in keys and keys[key][1] is upload:
                    del keys[key]
            if bloom.count > bloom.capacity:
                # Rebuilt at twice the size from the ledger, which by now
                # contains this upload's keys too.
                del self._filters[upload.stream]

    def _filter(self, stream: str) -> DigestBloomFilter:
        with self._lock:
            bloom = self._filters.get(stream)
        if bloom is not None:
            return bloom
        # Streamed from the database, never held as a list: a stream can have
        # millions of keys.
        bloom = DigestBloomFilter(expected=2 * self.ledger.key_count(stream))
        for key in self.ledger.stream_key_hashes(stream):
            bloom.add(key)
        with self._lock:
            return self._filters.setdefault(stream, bloom)

    def drop_known(self, upload: Upload) -> int:
        """Remove records whose keys the ledger already contains; return how many.

        A key delivered, pending or in doubt is skipped. With
        `resend_changed`, a delivered key whose record changed is kept.
        """
        if not upload.keys:
            return 0
        bloom = self._filter(upload.stream)
        candidates = [key for key, _ in upload.keys if key in bloom]
        if not candidates:
            return 0
        known = self.ledger.known_keys(upload.stream, candidates)
        if not known:
            return 0
        removed = 0
        for index in range(len(upload.keys) - 1, -1, -1):
            key, digest = upload.keys[index]
            if key not in known:
                continue
            known_digest, _status = known[key]
            if self.resend_changed and known_digest != digest:
                continue
            upload.remove_record(index)
            removed += 1
        return removed
