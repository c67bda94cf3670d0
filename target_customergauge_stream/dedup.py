"""Skip records that were delivered before or already appear in this run."""

from __future__ import annotations

import collections
import typing as t
from dataclasses import dataclass

if t.TYPE_CHECKING:
    from target_customergauge_stream.batching import Upload
    from target_customergauge_stream.ledger import DeliveryLedger

# stream's key hash -> (record hash, upload holding the record)
HeldKeys = dict[str, tuple[str, "Upload"]]


class KeyLookup(t.Protocol):
    """Interface of the ledger reads that the deduplicator needs."""

    def known_keys(self, stream: str, hashes: t.Iterable[str]) -> dict[str, str]:
        """Return the record hash of each given key that was delivered before."""
        ...

    def unresolved_keys(self) -> dict[str, dict[str, str]]:
        """Return the keys of uploads pending or in doubt, per stream."""
        ...


class DryRunLookup:
    """Lookup over the ledger's keys and those a dry run has pretended to deliver.

    A dry run must not write to the ledger, but its own keys have to leave
    memory as a real run's do. They go to a throwaway ledger instead, and a
    lookup reads both.
    """

    def __init__(self, ledger: DeliveryLedger, dry_run_keys: DeliveryLedger) -> None:
        self.ledger = ledger
        self.dry_run_keys = dry_run_keys

    def known_keys(self, stream: str, hashes: t.Iterable[str]) -> dict[str, str]:
        """Return the record hash of each given key, preferring the dry run's."""
        wanted = list(hashes)
        known = self.ledger.known_keys(stream, wanted)
        known.update(self.dry_run_keys.known_keys(stream, wanted))
        return known

    def unresolved_keys(self) -> dict[str, dict[str, str]]:
        """Return the ledger's keys of uploads pending or in doubt."""
        return self.ledger.unresolved_keys()


@dataclass(frozen=True)
class Decision:
    """Decision on one record: add it, skip it, or replace an earlier one."""

    add: bool
    replaces: Upload | None = None


SKIP = Decision(add=False)


class Deduplicator:
    """Decide per record, and per upload about to be sent, what is new.

    Within a run, a key seen before is caught in memory until the ledger's
    delivered keys hold it; from then on, the ledger catches it. Only keys
    of uploads not yet in the ledger are held in memory, so memory does not
    grow with the input.

    Only the reading thread changes the keys held in memory, without a
    lock: the upload thread hands back what the ledger now holds through
    a queue, which the reading thread empties in `release_recorded`.
    """

    def __init__(self, ledger: KeyLookup, *, resend_changed: bool) -> None:
        self.ledger = ledger
        self.resend_changed = resend_changed
        self._held: dict[str, HeldKeys] = {}
        # (upload, keys now in the ledger), appended by the upload thread.
        self._recorded: collections.deque[tuple[Upload, list[str]]] = (
            collections.deque()
        )
        # Keys of uploads an earlier run left pending or in doubt, loaded by
        # `reload_unresolved` once a real run has settled those uploads. A
        # dry run loads them unsettled, to skip what a real run would skip.
        self._unresolved: dict[str, dict[str, str]] = {}

    def reload_unresolved(self) -> None:
        """Read which keys are in uploads pending or in doubt."""
        self._unresolved = self.ledger.unresolved_keys()

    def held_keys(self, stream: str) -> HeldKeys:
        """Return the keys a stream has in uploads not yet in the ledger.

        The sink reads and adds entries directly; only the reading thread
        may use it.
        """
        return self._held.setdefault(stream, {})

    def decide_repeat(self, earlier: tuple[str, Upload], digest: str) -> Decision:
        """Decide on a record whose key this run has seen in `earlier`."""
        earlier_digest, upload = earlier
        if self.resend_changed and earlier_digest != digest:
            return Decision(add=True, replaces=upload)
        return SKIP

    def forget_upload(self, upload: Upload) -> None:
        """Queue an upload's keys for release once the ledger contains them.

        The upload thread calls it; `release_recorded` does the work.
        """
        self._recorded.append((upload, [key for key, _ in upload.keys]))

    def release_recorded(self) -> None:
        """Drop from memory the keys now in the ledger, on the reading thread."""
        while self._recorded:
            upload, keys = self._recorded.popleft()
            held = self._held.get(upload.stream)
            if held is None:
                continue
            for key in keys:
                entry = held.get(key)
                if entry is not None and entry[1] is upload:
                    del held[key]

    def drop_known(self, upload: Upload) -> int:
        """Remove records whose keys are in the ledger already; return how many.

        It runs on the upload thread, where the ledger's lookup overlaps the
        reading of the next records. A key delivered, pending or in doubt is
        skipped; with `resend_changed`, a delivered key whose record changed
        is kept.
        """
        if not upload.keys:
            return 0
        known = self.ledger.known_keys(upload.stream, [key for key, _ in upload.keys])
        unresolved = self._unresolved.get(upload.stream)
        if unresolved:
            known.update(
                (key, unresolved[key]) for key, _ in upload.keys if key in unresolved
            )
        if not known:
            return 0
        removed: list[str] = []
        for index in range(len(upload.keys) - 1, -1, -1):
            key, digest = upload.keys[index]
            known_digest = known.get(key)
            if known_digest is None:
                continue
            if (
                self.resend_changed
                and known_digest != digest
                and (unresolved is None or key not in unresolved)
            ):
                continue
            upload.remove_record(index)
            removed.append(key)
        # Those keys are the ledger's already: memory need not hold them.
        self._recorded.append((upload, removed))
        return len(removed)
