"""Inspect and resolve the delivery ledger from the command line.

Commands, each after `target-customergauge-stream-ledger --config config.json`
(or `--ledger-path FILE`, or `--ledger-url URL`): `list` (uploads pending or
in doubt), `show UPLOAD_ID` (its exact body), `resolve UPLOAD_ID --delivered`
or `--release`, `forget --stream S --key '["a@example.com"]'` or `forget
--before 2024-01-01`, and `count`. Without any of the three options, the
ledger comes from the variables Meltano sets for the target
(TARGET_CUSTOMERGAUGE_STREAM_LEDGER_URL or _LEDGER_PATH), else from the
default path.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import typing as t
from pathlib import Path

from target_customergauge_stream.ledger import PENDING, DeliveryLedger, LedgerError
from target_customergauge_stream.settings import resolve_settings

LOGGER = logging.getLogger("target-customergauge-stream-ledger")
# The variables through which Meltano passes these settings to the target.
URL_VARIABLE = "TARGET_CUSTOMERGAUGE_STREAM_LEDGER_URL"
PATH_VARIABLE = "TARGET_CUSTOMERGAUGE_STREAM_LEDGER_PATH"


def _ledger_url(arguments: argparse.Namespace) -> str:
    if arguments.ledger_url:
        return str(arguments.ledger_url)
    if arguments.ledger_path:
        return f"sqlite:///{arguments.ledger_path}"
    if not arguments.config:
        if os.environ.get(URL_VARIABLE):
            return os.environ[URL_VARIABLE]
        if os.environ.get(PATH_VARIABLE):
            return f"sqlite:///{os.environ[PATH_VARIABLE]}"
    config: dict[str, t.Any] = {}
    for path in arguments.config or []:
        try:
            config.update(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            msg = f"Cannot read the config file {path}: {exc}"
            raise SystemExit(msg) from None
    return resolve_settings(config).ledger_url


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="target-customergauge-stream-ledger",
        description="Inspect and resolve the target's delivery ledger.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        action="append",
        help="Target config file whose ledger_url or ledger_path to use.",
    )
    where.add_argument("--ledger-url", help="SQLAlchemy URL of the ledger.")
    where.add_argument(
        "--ledger-path", help="SQLite file of the ledger, as in 'ledger_path'."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="List uploads that are pending or in doubt.")
    show = commands.add_parser(
        "show", help="Write an in-doubt upload's body to stdout."
    )
    show.add_argument("upload_id")
    resolve = commands.add_parser("resolve", help="Settle an in-doubt upload.")
    resolve.add_argument("upload_id")
    outcome = resolve.add_mutually_exclusive_group(required=True)
    outcome.add_argument(
        "--delivered",
        action="store_true",
        help="CustomerGauge has the records: never send them again.",
    )
    outcome.add_argument(
        "--release",
        action="store_true",
        help="CustomerGauge does not have them: a later run may send them.",
    )
    forget = commands.add_parser(
        "forget", help="Forget delivered keys, for a deliberate re-survey."
    )
    forget.add_argument("--stream", help="Stream name; required with --key.")
    forget.add_argument(
        "--key",
        help=(
            "JSON list of the record's key values, in key order, such as "
            "'[\"a@example.com\"]'."
        ),
    )
    forget.add_argument(
        "--before",
        type=datetime.date.fromisoformat,
        help="Forget every key delivered before this date (YYYY-MM-DD, UTC).",
    )
    commands.add_parser("count", help="Count delivered keys per stream.")
    return parser


def _forget(ledger: DeliveryLedger, arguments: argparse.Namespace) -> int:  # noqa: PLR0911
    if arguments.key is not None and arguments.before is not None:
        LOGGER.error(
            "--key and --before cannot be combined: --key forgets one key "
            "whenever it was delivered. Run two commands if you need both."
        )
        return 2
    if arguments.stream and not ledger.has_stream(arguments.stream):
        known = ", ".join(f"'{name}'" for name in ledger.upload_streams()) or "none"
        LOGGER.error(
            "The ledger has no uploads or keys of stream '%s' (its streams: %s). "
            "Check the stream name.",
            arguments.stream,
            known,
        )
        return 1
    if arguments.key is not None:
        if not arguments.stream:
            LOGGER.error("--key needs --stream.")
            return 2
        try:
            values = json.loads(arguments.key)
        except ValueError:
            values = None
        if not isinstance(values, list):
            LOGGER.error(
                "--key must be a JSON list of the key values, such as "
                "'[\"a@example.com\"]' or '[\"1042\"]'."
            )
            return 2
        removed = ledger.forget_key(arguments.stream, values)
        print(f"Forgot {removed} delivered key(s) of stream '{arguments.stream}'.")
        return 0
    if arguments.before is not None:
        moment = datetime.datetime.combine(
            arguments.before, datetime.time(), tzinfo=datetime.timezone.utc
        )
        removed = ledger.forget_before(moment, arguments.stream)
        of_stream = f" of stream '{arguments.stream}'" if arguments.stream else ""
        print(
            f"Forgot {removed} key(s){of_stream} delivered before {arguments.before}."
        )
        return 0
    LOGGER.error("forget needs --key (with --stream) or --before.")
    return 2


def _list(ledger: DeliveryLedger) -> int:
    unresolved = ledger.unresolved()
    for item in unresolved:
        print(
            f"{item.upload_id}  {item.status:<8}  stream '{item.stream}'  "
            f"{item.record_count} records  "
            f"written {item.created_at:%Y-%m-%d %H:%M:%S}"
        )
    if not unresolved:
        print("No uploads are pending or in doubt.")
    elif any(item.status == PENDING for item in unresolved):
        print(
            "A pending upload was written ahead by a run that has not recorded "
            "its outcome. Unless that run is still sending it, treat it as in "
            "doubt, as the next run does."
        )
    return 0


def _run(ledger: DeliveryLedger, arguments: argparse.Namespace) -> int:  # noqa: PLR0911
    """Run one command on an open ledger and return the exit status."""
    if arguments.command == "list":
        return _list(ledger)
    if arguments.command == "show":
        matches = [i for i in ledger.unresolved() if i.upload_id == arguments.upload_id]
        if not matches or matches[0].body is None:
            LOGGER.error("No pending or in-doubt upload %s.", arguments.upload_id)
            return 1
        sys.stdout.buffer.write(matches[0].body)
        return 0
    if arguments.command == "resolve":
        if arguments.upload_id not in {i.upload_id for i in ledger.unresolved()}:
            LOGGER.error("No pending or in-doubt upload %s.", arguments.upload_id)
            return 1
        if arguments.delivered:
            ledger.mark_delivered(arguments.upload_id)
            print(f"Upload {arguments.upload_id} marked delivered.")
        else:
            ledger.release(arguments.upload_id)
            print(f"Upload {arguments.upload_id} released; it may be sent again.")
        return 0
    if arguments.command == "forget":
        return _forget(ledger, arguments)
    counts = ledger.delivered_counts()
    for stream, count in sorted(counts.items()):
        print(f"stream '{stream}': {count} delivered keys")
    if not counts:
        print("No delivered keys.")
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the ledger command line."""
    arguments = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        ledger = DeliveryLedger(_ledger_url(arguments), create=False)
    except LedgerError as exc:
        LOGGER.error("%s", exc)
        return 1
    try:
        return _run(ledger, arguments)
    finally:
        ledger.close()


if __name__ == "__main__":
    sys.exit(main())
