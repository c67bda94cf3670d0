"""Command line of the sandbox: `serve` and `summary`."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import typing as t
from pathlib import Path

from target_customergauge_stream.sandbox.contract import read_records
from target_customergauge_stream.sandbox.faults import ALL_STEPS, parse_steps
from target_customergauge_stream.sandbox.server import Sandbox, StoreNotEmptyError

LOGGER = logging.getLogger("customergauge-stream-sandbox")
API_KEY_ENV = "CUSTOMERGAUGE_SANDBOX_API_KEY"
CLIENT_SECRET_ENV = "CUSTOMERGAUGE_SANDBOX_CLIENT_SECRET"  # noqa: S105


def _read_store(store_dir: Path) -> list[dict[str, t.Any]]:
    documents = []
    for body_path in sorted(store_dir.glob("upload-*.xml")):
        json_path = body_path.with_suffix(".json")
        if json_path.exists():
            documents.append(json.loads(json_path.read_text(encoding="utf-8")))
            continue
        # Stored with --no-records-json: read the records from the body.
        received = datetime.datetime.fromtimestamp(
            body_path.stat().st_mtime, datetime.timezone.utc
        )
        documents.append(
            {
                "number": int(body_path.stem.split("-")[1]),
                "received_at": received.isoformat(),
                "bytes": body_path.stat().st_size,
                "records": read_records(body_path.read_bytes()),
            }
        )
    return documents


def print_summary(store_dir: Path) -> int:
    """Print one line per stored upload and a total line."""
    documents = _read_store(store_dir)
    if not documents:
        print(f"No uploads stored in {store_dir}.")
        return 0
    for document in documents:
        print(
            f"upload {document['number']:>4}: {len(document['records']):>5} records, "
            f"{document['bytes']:>9,} bytes, received {document['received_at']}"
        )
    records = [record for document in documents for record in document["records"]]
    distinct = len({record.get("Email") for record in records if record.get("Email")})
    total_bytes = sum(document["bytes"] for document in documents)
    print(
        f"{len(documents)} uploads, {len(records)} records, {total_bytes:,} bytes; "
        f"{distinct} distinct Email values."
    )
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="customergauge-stream-sandbox",
        description="Local stand-in for CustomerGauge's Stream API, on loopback only.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="Serve the Stream API until stopped with Ctrl-C or SIGTERM."
    )
    serve.add_argument("--host", default="127.0.0.1", help="Loopback address.")
    serve.add_argument(
        "--port", type=int, default=8765, help="TCP port; 0 picks a free one."
    )
    serve.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"API key that uploads must carry (default: ${API_KEY_ENV}).",
    )
    serve.add_argument(
        "--store-dir",
        type=Path,
        default=Path("sandbox-uploads"),
        help="Folder that receives each accepted upload as .xml and .json files.",
    )
    serve.add_argument(
        "--clear",
        action="store_true",
        help="Delete uploads left in --store-dir by an earlier run before serving.",
    )
    serve.add_argument(
        "--no-records-json",
        dest="records_json",
        action="store_false",
        help=(
            "Store only the raw .xml body of each upload, without the parsed "
            "records as .json, to keep the sandbox fast under benchmarks."
        ),
    )
    serve.add_argument(
        "--required-field",
        action="append",
        default=[],
        metavar="NAME",
        help="Field every record must carry, such as Email; repeat for more.",
    )
    serve.add_argument(
        "--script",
        type=parse_steps,
        default=[],
        metavar="STEPS",
        help=(
            "Comma-separated steps for the next upload requests, one per request "
            "(retries included), such as 'ok,503,ok,401'. Steps: "
            + ", ".join(ALL_STEPS)
            + "."
        ),
    )
    serve.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="Probability, 0 to 1, that a request after the script gets a fault.",
    )
    serve.add_argument(
        "--faults",
        type=parse_steps,
        default=[],
        metavar="STEPS",
        help="Comma-separated steps that random faults are drawn from.",
    )
    serve.add_argument("--seed", type=int, help="Seed of the random faults.")
    serve.add_argument(
        "--latency", type=float, default=0.0, help="Seconds added to every upload."
    )
    serve.add_argument(
        "--stall-seconds",
        type=float,
        default=30.0,
        help="How long the stall steps wait before answering or resetting.",
    )
    serve.add_argument(
        "--client-id", help="OAuth2 client ID the token endpoint accepts."
    )
    serve.add_argument(
        "--client-secret",
        default=os.environ.get(CLIENT_SECRET_ENV),
        help=f"OAuth2 client secret (default: ${CLIENT_SECRET_ENV}).",
    )
    serve.add_argument(
        "--token-lifetime",
        type=float,
        default=3600.0,
        help="Seconds an issued access token stays valid.",
    )
    serve.add_argument(
        "--token-failures",
        type=int,
        default=0,
        help="Respond to the first N token requests with 503, to test retries.",
    )
    serve.add_argument(
        "--echo-authorization",
        action="store_true",
        help="Quote the received Authorization header in error bodies.",
    )
    serve.add_argument(
        "--reject-repeated-bodies",
        action="store_true",
        help=(
            "Answer a body identical to one accepted before with error 400103, "
            "'This upload has already been processed'."
        ),
    )
    serve.add_argument(
        "--key-field",
        default="Email",
        help="Field whose repeated values GET /sandbox/duplicates reports.",
    )
    summary = commands.add_parser(
        "summary", help="List the uploads stored in a folder."
    )
    summary.add_argument("--store-dir", type=Path, default=Path("sandbox-uploads"))
    return parser


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the sandbox command line."""
    parser = _build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "summary":
        return print_summary(arguments.store_dir)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    if not arguments.api_key:
        parser.error(f"--api-key is missing; pass it or set ${API_KEY_ENV}.")
    try:
        sandbox = Sandbox(
            api_key=arguments.api_key,
            host=arguments.host,
            port=arguments.port,
            store_dir=arguments.store_dir,
            clear=arguments.clear,
            records_json=arguments.records_json,
            required_fields=arguments.required_field,
            script=arguments.script,
            fault_rate=arguments.fault_rate,
            faults=arguments.faults,
            seed=arguments.seed,
            latency=arguments.latency,
            stall_seconds=arguments.stall_seconds,
            client_id=arguments.client_id,
            client_secret=arguments.client_secret,
            token_lifetime=arguments.token_lifetime,
            token_failures=arguments.token_failures,
            echo_authorization=arguments.echo_authorization,
            reject_repeated_bodies=arguments.reject_repeated_bodies,
            key_field=arguments.key_field,
        )
    except (ValueError, OSError, StoreNotEmptyError) as exc:
        parser.error(str(exc))
    LOGGER.info(
        "Serving the Stream API at %s, storing uploads in %s.",
        sandbox.endpoint_url(),
        arguments.store_dir,
    )
    try:
        sandbox.server.serve_forever()
    except KeyboardInterrupt:
        LOGGER.info("Stopped.")
    finally:
        sandbox.server.server_close()
    return 0
