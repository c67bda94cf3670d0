"""Send uploads that a failed run saved, in order, then remove each one.

    target-customergauge-stream-replay --config config.json [--dir FOLDER] [--list]

The normal way to recover from a failed run is to re-run the sync from its
last STATE: the tap reads the undelivered records again. Replay is for when
that is not possible, for example when the source has changed since. Doing
both uploads the same records twice.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import sys
import typing as t
from pathlib import Path

from lxml import etree

from target_customergauge_stream.client import StreamApiClient, UploadFailedError
from target_customergauge_stream.failed_store import FailedUploadStore
from target_customergauge_stream.ledger import HASH_DIGITS, DeliveryLedger
from target_customergauge_stream.payload import build_body
from target_customergauge_stream.safe_xml import safe_parser
from target_customergauge_stream.settings import resolve_settings, validate_config

LOGGER = logging.getLogger("target-customergauge-stream-replay")


def _load_config(paths: list[Path]) -> dict[str, t.Any]:
    config: dict[str, t.Any] = {}
    for path in paths:
        try:
            config.update(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            msg = f"Cannot read the config file {path}: {exc}"
            raise SystemExit(msg) from None
    return config


def _config_schema() -> dict[str, t.Any]:
    # Imported here: the target module loads the whole SDK.
    from target_customergauge_stream.target import TargetCustomerGaugeStream  # noqa: PLC0415

    schema = copy.deepcopy(TargetCustomerGaugeStream.config_jsonschema)
    TargetCustomerGaugeStream.append_builtin_config(schema)
    return schema


def without_known_records(
    body: bytes, keys: list[tuple[str, str]], known: t.Container[str]
) -> tuple[bytes, list[tuple[str, str]]]:
    """Rebuild a body without the records whose key hash is in `known`.

    Records are serialised by lxml exactly as the target wrote them, so a
    body from which nothing is removed comes out byte-identical.
    """
    root = etree.fromstring(body, parser=safe_parser())
    kept_fragments: list[bytes] = []
    kept_keys: list[tuple[str, str]] = []
    for element, pair in zip(root, keys, strict=True):
        if pair[0] in known:
            continue
        element.tail = None
        kept_fragments.append(etree.tostring(element, encoding="utf-8"))
        kept_keys.append(pair)
    return build_body(kept_fragments), kept_keys


def replay(
    store: FailedUploadStore,
    client: StreamApiClient,
    ledger: DeliveryLedger | None = None,
) -> int:
    """Send every saved upload in order; stop at the first one that fails.

    With the delivery ledger, records it knows (delivered, for example by a
    re-run, or pending or in doubt) are taken out first, and each upload is
    written ahead and settled as during a run.

    Returns:
        The process exit status: 0 when every saved upload was delivered.
    """
    saved_uploads = store.list()
    if not saved_uploads:
        LOGGER.info("No saved uploads in '%s'.", store.folder)
        return 0
    delivered = 0
    # Keys of uploads pending or in doubt count as known, because those uploads
    # may have arrived. An upload that replay leaves in doubt ends the replay,
    # so reading them once is enough.
    unresolved = ledger.unresolved_keys() if ledger is not None else {}
    for saved in saved_uploads:
        body = saved.body_path.read_bytes()
        records = saved.description.get("record_count", "?")
        label = f"Saved upload '{saved.body_path.name}' ({records} records)"
        expected_digest = saved.description.get("sha256")
        if expected_digest != hashlib.sha256(body).hexdigest():
            LOGGER.error(
                "%s: the body does not match the SHA-256 in its description "
                "(changed, truncated, or the description is missing). Nothing "
                "more was sent; check the file, or remove it to skip it.",
                label,
            )
            return 1
        # Bodies saved by version 1 of the ledger carry 64-digit hashes.
        keys = [
            (str(key)[:HASH_DIGITS], str(digest)[:HASH_DIGITS])
            for key, digest in saved.description.get("keys", [])
        ]
        stream = str(saved.description.get("stream", ""))
        ledger_id = None
        if ledger is not None and keys:
            known = set(ledger.known_keys(stream, [key for key, _ in keys]))
            known.update(unresolved.get(stream, {}))
            known.intersection_update(key for key, _ in keys)
            if known:
                body, keys = without_known_records(body, keys, known)
                LOGGER.info(
                    "%s: %d records are already in the delivery ledger and are "
                    "not sent again.",
                    label,
                    len(known),
                )
            if not keys:
                saved.remove()
                delivered += 1
                continue
            ledger_id = ledger.write_ahead(stream, keys, body)
        try:
            client.send(body, label)
        except UploadFailedError as exc:
            if ledger is not None and ledger_id is not None:
                if exc.ambiguous:
                    ledger.mark_in_doubt(ledger_id)
                else:
                    ledger.release(ledger_id)
            LOGGER.error("%s", exc)
            LOGGER.error(
                "Stopped: %d of %d saved uploads delivered; the rest stay in '%s'.",
                delivered,
                len(saved_uploads),
                store.folder,
            )
            return 1
        if ledger is not None and ledger_id is not None:
            ledger.mark_delivered(ledger_id)
        saved.remove()
        delivered += 1
        LOGGER.info("%s delivered and removed.", label)
    LOGGER.info("All %d saved uploads delivered.", delivered)
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the replay command line."""
    parser = argparse.ArgumentParser(
        prog="target-customergauge-stream-replay",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        required=True,
        help="Target config file, as for the target itself; repeat to merge several.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help="Folder of saved uploads (default: the config's 'failed_uploads_dir').",
    )
    parser.add_argument(
        "--list", action="store_true", help="List the saved uploads and send nothing."
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s | %(levelname)-8s | %(message)s"
    )

    config = _load_config(arguments.config)
    errors = validate_config(config, _config_schema())
    if errors:
        for error in errors:
            LOGGER.error("%s", error)
        return 2
    settings = resolve_settings(config)
    store = FailedUploadStore(arguments.dir or settings.failed_uploads_dir)

    if arguments.list:
        for saved in store.list():
            description = saved.description
            print(
                f"{saved.body_path.name}: stream {description.get('stream')!r}, "
                f"{description.get('record_count')} records, "
                f"input lines {description.get('first_input_line')}-"
                f"{description.get('last_input_line')}: {description.get('error')}"
            )
        return 0

    client = StreamApiClient(
        settings, halt_on_ambiguous=settings.dedup and settings.halt_in_doubt
    )
    ledger = DeliveryLedger(settings.ledger_url) if settings.dedup else None
    try:
        return replay(store, client, ledger)
    finally:
        client.close()
        if ledger is not None:
            ledger.close()


if __name__ == "__main__":
    sys.exit(main())
