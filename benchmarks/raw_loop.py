"""The floor for the target's speed: the same XML from a plain loop, no SDK.

Reads Singer messages from standard input and parses each line with the
standard library's `json`, numbers with a fraction as `decimal.Decimal`. Each
record becomes a `<record>` element with one `lxml.etree.SubElement` per
field. Every 2,000 records are serialised as one upload body with the XML
declaration, and the bytes are dropped. Nothing is validated or sent, so
this is a lower bound for what any target that writes this XML can reach.

Values are written as the target writes them: date-time strings in UTC as
'YYYY-MM-DD HH:MM:SS', numbers in positional notation, booleans as
`true`/`false`, nulls and missing properties left out. At the end the last
STATE value goes to standard output, as a target would emit it.

    python benchmarks/raw_loop.py < input.jsonl
"""

from __future__ import annotations

import datetime
import decimal
import json
import sys
import typing as t

from lxml import etree

RECORDS_PER_UPLOAD = 2000
UTC = datetime.timezone.utc


class StreamLayout(t.NamedTuple):
    """Properties of one stream in schema order, and which ones are date-times."""

    properties: list[str]
    date_times: frozenset[str]


def layout_of(schema: dict[str, t.Any]) -> StreamLayout:
    """Read property order and date-time properties from a SCHEMA's schema."""
    properties = schema.get("properties", {})
    date_times = frozenset(
        name
        for name, property_schema in properties.items()
        if property_schema.get("format") == "date-time"
    )
    return StreamLayout(list(properties), date_times)


def text_of(value: t.Any, *, is_date_time: bool) -> str:  # noqa: ANN401
    """Write one JSON value as element text."""
    if isinstance(value, str):
        if not is_date_time:
            return value
        moment = datetime.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def serialise(root: etree._Element) -> bytes:
    """Return one upload body, with the XML declaration."""
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def run(lines: t.Iterable[bytes]) -> tuple[int, int, int, t.Any]:
    """Turn the input into upload bodies.

    Returns:
        Records, uploads, total body bytes, and the last STATE value.
    """
    layouts: dict[str, StreamLayout] = {}
    open_roots: dict[str, etree._Element] = {}
    open_counts: dict[str, int] = {}
    records = uploads = body_bytes = 0
    last_state: t.Any = None

    for line in lines:
        if not line.strip():
            continue
        message = json.loads(line, parse_float=decimal.Decimal)
        kind = message["type"]
        if kind == "SCHEMA":
            layouts[message["stream"]] = layout_of(message["schema"])
        elif kind == "RECORD":
            stream = message["stream"]
            layout = layouts[stream]
            record = message["record"]
            root = open_roots.get(stream)
            if root is None:
                root = open_roots[stream] = etree.Element("records")
                open_counts[stream] = 0
            element = etree.SubElement(root, "record")
            for name in layout.properties:
                value = record.get(name)
                if value is None:
                    continue
                etree.SubElement(element, name).text = text_of(
                    value, is_date_time=name in layout.date_times
                )
            records += 1
            open_counts[stream] += 1
            if open_counts[stream] == RECORDS_PER_UPLOAD:
                body_bytes += len(serialise(open_roots.pop(stream)))
                uploads += 1
        elif kind == "STATE":
            last_state = message["value"]

    for root in open_roots.values():
        body_bytes += len(serialise(root))
        uploads += 1
    return records, uploads, body_bytes, last_state


def main() -> int:
    """Read standard input, report the counts on standard error."""
    records, uploads, body_bytes, last_state = run(sys.stdin.buffer)
    if last_state is not None:
        sys.stdout.write(json.dumps(last_state) + "\n")
    print(
        f"raw loop: {records} records in {uploads} upload bodies, "
        f"{body_bytes} bytes, discarded.",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
