"""Write a made-up transactional Singer stream for the benchmarks.

The output is one SCHEMA message for the stream `orders`, then the RECORD
messages, with a STATE message after every 10,000 records and one after the
last record. The same arguments always give the same bytes.

    python benchmarks/generate.py --records 100000 --output orders.jsonl
    python benchmarks/generate.py --records 20000 --variable-sizes > big.jsonl

All names, companies and e-mail addresses are invented, and every address is
under example.com.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import sys
import typing as t
from pathlib import Path

STREAM = "orders"
STATE_EVERY = 10_000
DEFAULT_SEED = 20241204

# Longest Notes value in --variable-sizes mode, in characters.
MAX_VARIABLE_NOTES = 50_000

ORDER_SCHEMA: dict[str, t.Any] = {
    "type": "object",
    "properties": {
        "Email": {"type": "string"},
        "FirstName": {"type": ["string", "null"]},
        "LastName": {"type": ["string", "null"]},
        "Company": {"type": ["string", "null"]},
        "Country": {"type": ["string", "null"]},
        "Language": {"type": ["string", "null"]},
        "Reference": {"type": "string"},
        "order_date": {"type": "string", "format": "date-time"},
        "Amount": {"type": ["number", "null"]},
        "Active": {"type": ["boolean", "null"]},
        "Segment": {"type": ["string", "null"]},
        "Notes": {"type": ["string", "null"]},
    },
    "required": ["Email", "Reference", "order_date"],
}

FIRST_NAMES = [
    "Zoë",
    "Ånund",
    "Şirin",
    "Ngozi",
    "Ilse",
    "陽翔",
    "Émile",
    "Oyelaran",
    "Maëlle",
    "Tevita",
    "Björn",
    "Łucja",
    "Aroha",
    "Dmitrii",
    "Søren",
    "Ines",
]
LAST_NAMES = [
    "Vandermolen",
    "Østergård",
    "Quispe-Ñaupa",
    "O'Dálaigh",
    "佐藤",
    "Kowalczyk",
    "Åberg",
    "Nguyễn",
    "Müller-Lüdenscheidt",
    "Papadopoulou",
    "Fernández",
    "Ødegaard",
]
COMPANIES = [
    "Acme & Sons",
    "Blue <Fin> Ltd",
    'The "Quoted" Co',
    "Müller GmbH",
    "株式会社テスト",
    "Zebra Logistics B.V.",
    "Café Olé S.A.",
    "Northwind Parts",
]
COUNTRIES = ["NL", "DE", "JP", "BR", "FR", "PL", "NZ", "US", "GB", "ES"]
LANGUAGES = ["nl", "de", "ja", "pt-BR", "fr", "pl", "en", "es"]
SEGMENTS = ["Gold", "Silver", "Bronze"]
# UTC offsets of order_date, in minutes. An offset of 0 is written as 'Z' or
# '+00:00'.
OFFSETS_MINUTES = [-480, -300, -180, 0, 0, 60, 120, 330, 540, 765]
NOTE_SENTENCES = [
    "Delivered on time.",
    "Customer asked for a < 5 day delivery window.",
    "Invoice & packing slip sent separately.",
    "Box arrived dented; replacement shipped.",
    "Prefers e-mail over phone.",
    "Bestellung vollständig geliefert.",
    "Paid by bank transfer & card.",
    "Follow-up call planned for next week.",
    "配送は予定どおりでした。",
    "Price <discount> applied at checkout.",
    "Très satisfait du service 👍",
    "Asked whether x < y && y > z still holds.",
]
FIRST_ORDER_DATE = datetime.datetime(2023, 1, 1, tzinfo=datetime.timezone.utc)
ORDER_DATE_SPAN_SECONDS = 2 * 365 * 86_400


def _json(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _maybe(rng: random.Random, choices: list[str], null_share: float) -> str:
    if rng.random() < null_share:
        return "null"
    return _json(rng.choice(choices))


def _order_date(rng: random.Random) -> str:
    moment = FIRST_ORDER_DATE + datetime.timedelta(
        seconds=rng.randrange(ORDER_DATE_SPAN_SECONDS)
    )
    offset_minutes = rng.choice(OFFSETS_MINUTES)
    local = moment.astimezone(
        datetime.timezone(datetime.timedelta(minutes=offset_minutes))
    )
    if rng.random() < 0.2:
        local = local.replace(microsecond=rng.randrange(1_000_000))
    text = local.isoformat()
    if offset_minutes == 0 and rng.random() < 0.5:
        text = text.removesuffix("+00:00") + "Z"
    return text


def _note_text(rng: random.Random, length: int) -> str:
    """Build free text of exactly `length` characters from the sentence pool."""
    if length == 0:
        return ""
    parts: list[str] = []
    size = 0
    # Draw sentences for at most 2,000 characters and repeat them after that,
    # so that a 50,000-character note costs no more random draws than that.
    while size < min(length, 2_000):
        sentence = rng.choice(NOTE_SENTENCES)
        parts.append(sentence)
        size += len(sentence) + 1
    text = " ".join(parts)
    if len(text) < length:
        text = (text + " ") * (length // (len(text) + 1) + 1)
    return text[:length]


def _usual_note_length(rng: random.Random) -> int:
    # Most orders carry a short note or none, a few a paragraph.
    roll = rng.random()
    if roll < 0.3:
        return 0
    if roll < 0.9:
        return rng.randrange(10, 120)
    return rng.randrange(120, 600)


def _variable_note_length(rng: random.Random) -> int:
    # Heavy-tailed: Lomax with shape 1.1 and scale 200, cut at
    # MAX_VARIABLE_NOTES, with 10% empty notes. With the default seed, 20,000
    # records have a mean of 734 and a median of 125 characters. So the
    # 2,000,000-byte cap closes some uploads and the 2,000-record cap others.
    if rng.random() < 0.1:
        return 0
    length = int((rng.paretovariate(1.1) - 1.0) * 200)
    return min(length, MAX_VARIABLE_NOTES)


def record_line(index: int, rng: random.Random, *, variable_sizes: bool) -> str:
    """Return the RECORD message of order number `index` as one JSON line."""
    cents = rng.randrange(0, 2_500_000)
    amount = "null" if rng.random() < 0.03 else f"{cents // 100}.{cents % 100:02d}"
    active = rng.choice(["true", "true", "false", "null"])
    note_length = (
        _variable_note_length(rng) if variable_sizes else _usual_note_length(rng)
    )
    notes = "null" if rng.random() < 0.05 else _json(_note_text(rng, note_length))
    fields = [
        ("Email", _json(f"customer{index:07d}@example.com")),
        ("FirstName", _maybe(rng, FIRST_NAMES, 0.02)),
        ("LastName", _maybe(rng, LAST_NAMES, 0.02)),
        ("Company", _maybe(rng, COMPANIES, 0.15)),
        ("Country", _maybe(rng, COUNTRIES, 0.05)),
        ("Language", _maybe(rng, LANGUAGES, 0.05)),
        ("Reference", _json(f"{rng.randrange(10**8):08d}")),
        ("order_date", _json(_order_date(rng))),
        ("Amount", amount),
        ("Active", active),
        ("Segment", _maybe(rng, SEGMENTS, 0.25)),
        ("Notes", notes),
    ]
    body = ",".join(f'"{name}":{value}' for name, value in fields)
    return f'{{"type":"RECORD","stream":"{STREAM}","record":{{{body}}}}}\n'


def state_line(records_written: int) -> str:
    """Return a STATE message that bookmarks the first `records_written` orders."""
    value = {"bookmarks": {STREAM: {"replication_key_value": records_written}}}
    return json.dumps({"type": "STATE", "value": value}) + "\n"


def schema_line() -> str:
    """Return the SCHEMA message of the `orders` stream."""
    message = {
        "type": "SCHEMA",
        "stream": STREAM,
        "schema": ORDER_SCHEMA,
        "key_properties": ["Email"],
    }
    return json.dumps(message, ensure_ascii=False) + "\n"


def iter_lines(
    records: int, seed: int = DEFAULT_SEED, *, variable_sizes: bool = False
) -> t.Iterator[str]:
    """Yield the stream's lines: SCHEMA, RECORDs with STATE between, last STATE."""
    rng = random.Random(seed)  # noqa: S311 - made-up data, not secrets
    yield schema_line()
    for index in range(1, records + 1):
        yield record_line(index, rng, variable_sizes=variable_sizes)
        if index % STATE_EVERY == 0:
            yield state_line(index)
    if records % STATE_EVERY != 0 or records == 0:
        yield state_line(records)


def write_stream(
    output: t.BinaryIO,
    records: int,
    seed: int = DEFAULT_SEED,
    *,
    variable_sizes: bool = False,
) -> int:
    """Write the stream as UTF-8 and return the number of bytes written."""
    written = 0
    chunk: list[str] = []
    for line in iter_lines(records, seed, variable_sizes=variable_sizes):
        chunk.append(line)
        if len(chunk) >= 1_000:
            data = "".join(chunk).encode("utf-8")
            output.write(data)
            written += len(data)
            chunk.clear()
    data = "".join(chunk).encode("utf-8")
    output.write(data)
    return written + len(data)


def write_stream_file(
    path: Path,
    records: int,
    seed: int = DEFAULT_SEED,
    *,
    variable_sizes: bool = False,
) -> int:
    """Write the stream to a file and return its size in bytes."""
    with path.open("wb") as output:
        return write_stream(output, records, seed, variable_sizes=variable_sizes)


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the command line."""
    parser = argparse.ArgumentParser(
        description="Write a made-up Singer stream of orders, the same for a seed."
    )
    parser.add_argument(
        "--records", type=int, default=100_000, help="Number of RECORD messages."
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="Seed of the random values."
    )
    parser.add_argument(
        "--variable-sizes",
        action="store_true",
        help=(
            "Give Notes a heavy-tailed length from 0 to "
            f"{MAX_VARIABLE_NOTES:,} characters instead of 0 to 600."
        ),
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="File to write; standard output when missing or '-'.",
    )
    arguments = parser.parse_args(argv)
    if arguments.records < 0:
        parser.error("--records must be 0 or more.")

    if arguments.output is None or str(arguments.output) == "-":
        write_stream(
            sys.stdout.buffer,
            arguments.records,
            arguments.seed,
            variable_sizes=arguments.variable_sizes,
        )
        sys.stdout.buffer.flush()
    else:
        size = write_stream_file(
            arguments.output,
            arguments.records,
            arguments.seed,
            variable_sizes=arguments.variable_sizes,
        )
        print(
            f"Wrote {arguments.records:,} records ({size:,} bytes) to "
            f"{arguments.output}.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
