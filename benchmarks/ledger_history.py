"""Build a delivery ledger that already contains the keys of earlier syncs.

A ledger keeps every key it has delivered, so after months of nightly syncs
it contains millions of them. `run.py --ledger-keys N` starts each run of the
target from a copy of such a ledger, built here once per benchmark. It is
built through the ledger's own methods and in the target's steps: uploads of
2,000 keys are written ahead, marked delivered, and added to the index in
batches.
"""

from __future__ import annotations

import logging
import time
import typing as t

from target_customergauge_stream.delivery import KEYS_PER_LEDGER_UPDATE
from target_customergauge_stream.ledger import (
    DeliveryLedger,
    record_hash,
    text_key_hash,
)

if t.TYPE_CHECKING:
    from pathlib import Path

KEYS_PER_UPLOAD = 2_000


def build_ledger(path: Path, keys: int, stream: str) -> float:
    """Fill a new SQLite ledger with `keys` delivered keys and return the seconds taken.

    The keys are hashes of made-up addresses under `history.example.com`, a
    domain the benchmark input never uses, so none of them matches a record
    of the input.
    """
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    # The ledger warns that it starts empty, which is expected here.
    ledger_logger = logging.getLogger(DeliveryLedger.__module__)
    level = ledger_logger.level
    ledger_logger.setLevel(logging.ERROR)
    try:
        ledger = DeliveryLedger(f"sqlite:///{path}")
    finally:
        ledger_logger.setLevel(level)
    try:
        waiting = 0
        for first in range(0, keys, KEYS_PER_UPLOAD):
            upload_keys = [
                (
                    text_key_hash(f"customer-{number}@history.example.com"),
                    record_hash(b"history-%d" % number),
                )
                for number in range(first, min(first + KEYS_PER_UPLOAD, keys))
            ]
            upload_id = ledger.write_ahead(stream, upload_keys, b"")
            ledger.mark_delivered(upload_id, add_keys=False)
            waiting += len(upload_keys)
            if waiting >= KEYS_PER_LEDGER_UPDATE:
                ledger.add_delivered_keys()
                waiting = 0
        ledger.add_delivered_keys()
    finally:
        # Closing folds the write-ahead log into the file, so that copying
        # the one file copies the whole ledger.
        ledger.close()
    return time.perf_counter() - started
