"""Unit tests of the XML encoding of records and upload bodies."""

from __future__ import annotations

import datetime
import decimal
import typing as t
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from target_customergauge_stream.payload import (
    BODY_OVERHEAD,
    InvalidValueError,
    RecordEncoder,
    SchemaNotSupportedError,
    build_body,
    to_element_name,
)

UTC = datetime.timezone.utc
AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")


def schema_of(properties: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"type": "object", "properties": properties}


def encode_one(
    value: t.Any,
    property_schema: dict[str, t.Any] | None = None,
    timezone: datetime.tzinfo = UTC,
) -> bytes:
    """Encode a record whose only property is 'a'."""
    encoder = RecordEncoder(schema_of({"a": property_schema or {}}), timezone)
    return encoder.encode({"a": value})


def is_xml_char(character: str) -> bool:
    """Return whether XML 1.0 allows a character (its spec's Char production)."""
    code = ord(character)
    return (
        character in "\t\n\r"
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def keep_xml_chars(text: str) -> str:
    return "".join(character for character in text if is_xml_char(character))


# Strings


def test_string_kept_as_utf8() -> None:
    encoded = encode_one("Zoë 日本 😀")

    assert encoded == (
        b"<record><a>Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80</a></record>"
    )


def test_empty_string_gives_empty_element() -> None:
    assert encode_one("") == b"<record><a></a></record>"


def test_markup_characters_escaped() -> None:
    encoded = encode_one("Fish & Chips <b>bold</b> 1 > 0")

    assert encoded == (
        b"<record><a>Fish &amp; Chips &lt;b&gt;bold&lt;/b&gt; 1 &gt; 0</a></record>"
    )


def test_carriage_return_escaped() -> None:
    assert encode_one("line one\r\nline two") == (
        b"<record><a>line one&#13;\nline two</a></record>"
    )


def test_whitespace_and_quotes_kept() -> None:
    encoded = encode_one("tab\there\nnew \"quoted\" 'single'")

    assert encoded == b"<record><a>tab\there\nnew \"quoted\" 'single'</a></record>"


@pytest.mark.parametrize(
    "character",
    [
        *(chr(code) for code in range(0x00, 0x09)),
        "\x0b",
        "\x0c",
        *(chr(code) for code in range(0x0E, 0x20)),
        "\ufffe",
        "\uffff",
        "\ud800",
        # Ruff 0.17 reports U+DFFF as a duplicate of U+D800, which it is not.
        "\udfff",  # noqa: PT014
    ],
    ids=lambda character: f"U+{ord(character):04X}",
)
def test_illegal_character_removed(character: str) -> None:
    encoder = RecordEncoder(schema_of({"a": {}}))

    encoded = encoder.encode({"a": f"x{character}y"})

    assert encoded == b"<record><a>xy</a></record>"
    assert encoder.removed_characters == {"a": 1}


def test_removed_characters_counted_per_property() -> None:
    encoder = RecordEncoder(schema_of({"comment": {}, "name": {}, "city": {}}))

    encoder.encode({"comment": "a\x00b\x1fc", "name": "Zoë\ufffe", "city": "Delft"})
    encoder.encode({"comment": "\x0b", "name": "Ann"})

    assert encoder.removed_characters == {"comment": 3, "name": 1}


def test_removed_characters_inside_json() -> None:
    encoder = RecordEncoder(schema_of({"tags": {"type": "array"}}))

    encoded = encoder.encode({"tags": ["red\uffff", "blue"]})

    assert encoded == b'<record><tags>["red","blue"]</tags></record>'
    assert encoder.removed_characters == {"tags": 1}


# Numbers and booleans


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, b"0"),
        (42, b"42"),
        (-17, b"-17"),
        (2**70, b"1180591620717411303424"),
        (-(2**64) - 1, b"-18446744073709551617"),
    ],
)
def test_integer_written_as_digits(value: int, expected: bytes) -> None:
    assert encode_one(value) == b"<record><a>" + expected + b"</a></record>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (decimal.Decimal("1E+2"), b"100"),
        (decimal.Decimal("1E-7"), b"0.0000001"),
        (decimal.Decimal("1.10"), b"1.10"),
        (decimal.Decimal("-12.5"), b"-12.5"),
        (decimal.Decimal("0"), b"0"),
        (decimal.Decimal("0.00"), b"0.00"),
        (
            decimal.Decimal("123456789012345678901234567890.5"),
            b"123456789012345678901234567890.5",
        ),
    ],
    ids=str,
)
def test_decimal_written_positionally(value: decimal.Decimal, expected: bytes) -> None:
    assert encode_one(value) == b"<record><a>" + expected + b"</a></record>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, b"0.1"),
        (-2.5, b"-2.5"),
        (1e20, b"100000000000000000000"),
        (1e-7, b"0.0000001"),
        (0.0, b"0.0"),
    ],
    ids=repr,
)
def test_finite_float_written_positionally(value: float, expected: bytes) -> None:
    assert encode_one(value) == b"<record><a>" + expected + b"</a></record>"


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        decimal.Decimal("NaN"),
        decimal.Decimal("Infinity"),
        decimal.Decimal("-Infinity"),
    ],
    ids=repr,
)
def test_non_finite_number_rejected(value: float | decimal.Decimal) -> None:
    encoder = RecordEncoder(schema_of({"score": {"type": "number"}}))

    with pytest.raises(InvalidValueError) as caught:
        encoder.encode({"score": value})

    assert caught.value.field == "score"
    assert str(caught.value) == (
        "field 'score' is NaN or an infinity, which has no XML form"
    )


def test_non_finite_in_json_rejected() -> None:
    encoder = RecordEncoder(schema_of({"answers": {"type": "object"}}))
    value = {"comment": "Private remark by Zoë", "score": float("nan")}

    with pytest.raises(InvalidValueError) as caught:
        encoder.encode({"answers": value})

    assert caught.value.field == "answers"
    assert "Private remark" not in str(caught.value)


@pytest.mark.parametrize(("value", "expected"), [(True, b"true"), (False, b"false")])
def test_boolean_written_lowercase(value: bool, expected: bytes) -> None:
    assert encode_one(value) == b"<record><a>" + expected + b"</a></record>"


# Dates and times

DATE_TIME = {"type": "string", "format": "date-time"}
PLUS_2 = datetime.timezone(datetime.timedelta(hours=2))
MINUS_5_30 = datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime.datetime(2024, 5, 6, 9, 8, 9, tzinfo=PLUS_2), b"2024-05-06 07:08:09"),
        (
            datetime.datetime(2024, 5, 6, 1, 0, 0, tzinfo=MINUS_5_30),
            b"2024-05-06 06:30:00",
        ),
        (datetime.datetime(2024, 5, 6, 7, 8, 9), b"2024-05-06 07:08:09"),
        (
            datetime.datetime(2024, 5, 6, 7, 8, 9, 999999, tzinfo=UTC),
            b"2024-05-06 07:08:09",
        ),
        (datetime.datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), b"0999-01-02 03:04:05"),
        (datetime.datetime(5, 1, 2, 3, 4, 5), b"0005-01-02 03:04:05"),
    ],
    ids=["plus-offset", "minus-offset", "naive", "microseconds", "year-999", "year-5"],
)
def test_datetime_written_in_utc(value: datetime.datetime, expected: bytes) -> None:
    assert encode_one(value, DATE_TIME) == b"<record><a>" + expected + b"</a></record>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime.datetime(2024, 3, 31, 0, 59, 59, tzinfo=UTC), b"2024-03-31 01:59:59"),
        (datetime.datetime(2024, 3, 31, 1, 0, 0, tzinfo=UTC), b"2024-03-31 03:00:00"),
        (
            datetime.datetime(2024, 10, 27, 0, 59, 59, tzinfo=UTC),
            b"2024-10-27 02:59:59",
        ),
        (datetime.datetime(2024, 10, 27, 1, 0, 0, tzinfo=UTC), b"2024-10-27 02:00:00"),
    ],
    ids=["before-spring", "after-spring", "before-autumn", "after-autumn"],
)
def test_datetime_converted_across_dst(
    value: datetime.datetime, expected: bytes
) -> None:
    encoded = encode_one(value, DATE_TIME, AMSTERDAM)

    assert encoded == b"<record><a>" + expected + b"</a></record>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-06T07:08:09Z", b"2024-05-06 07:08:09"),
        ("2024-05-06T07:08:09.123456Z", b"2024-05-06 07:08:09"),
        ("2024-05-06T09:08:09+02:00", b"2024-05-06 07:08:09"),
        ("2024-05-06T07:08:09", b"2024-05-06 07:08:09"),
    ],
)
def test_datetime_string_parsed(value: str, expected: bytes) -> None:
    assert encode_one(value, DATE_TIME) == b"<record><a>" + expected + b"</a></record>"


def test_naive_datetime_converted_to_zone() -> None:
    encoded = encode_one(datetime.datetime(2024, 7, 1, 10, 0, 0), DATE_TIME, AMSTERDAM)

    assert encoded == b"<record><a>2024-07-01 12:00:00</a></record>"


def test_datetime_string_converted_to_zone() -> None:
    encoded = encode_one("2024-07-01T10:00:00Z", DATE_TIME, AMSTERDAM)

    assert encoded == b"<record><a>2024-07-01 12:00:00</a></record>"


def test_invalid_datetime_string_rejected() -> None:
    encoder = RecordEncoder(schema_of({"created": DATE_TIME}))

    with pytest.raises(InvalidValueError) as caught:
        encoder.encode({"created": "next Tuesday"})

    assert caught.value.field == "created"


def test_datetime_in_any_of() -> None:
    property_schema = {"anyOf": [DATE_TIME, {"type": "null"}]}

    encoded = encode_one("2024-05-06T07:08:09+00:00", property_schema)

    assert encoded == b"<record><a>2024-05-06 07:08:09</a></record>"


@pytest.mark.parametrize(
    "value", [datetime.date(2024, 2, 29), "2024-02-29"], ids=["date", "string"]
)
def test_date_written_as_iso(value: datetime.date | str) -> None:
    encoded = encode_one(value, {"type": "string", "format": "date"})

    assert encoded == b"<record><a>2024-02-29</a></record>"


def test_early_date_padded() -> None:
    encoded = encode_one(datetime.date(999, 12, 31), {"format": "date"})

    assert encoded == b"<record><a>0999-12-31</a></record>"


@pytest.mark.parametrize(
    "value",
    [datetime.time(7, 8, 9), datetime.time(7, 8, 9, 500000), "07:08:09", "07:08:09.5"],
    ids=["time", "time-fraction", "string", "string-fraction"],
)
def test_time_written_as_hms(value: datetime.time | str) -> None:
    encoded = encode_one(value, {"type": "string", "format": "time"})

    assert encoded == b"<record><a>07:08:09</a></record>"


# Nulls, missing properties and order


def test_null_and_missing_omitted() -> None:
    encoder = RecordEncoder(schema_of({"a": {}, "b": {}, "c": {}}))

    encoded = encoder.encode({"a": None, "c": "kept"})

    assert encoded == b"<record><c>kept</c></record>"


def test_all_null_gives_empty_record() -> None:
    encoder = RecordEncoder(schema_of({"a": {}}))

    assert encoder.encode({"a": None}) == b"<record></record>"


def test_elements_follow_schema_order() -> None:
    encoder = RecordEncoder(schema_of({"first": {}, "second": {}, "third": {}}))

    encoded = encoder.encode({"third": 3, "first": 1, "second": 2})

    assert (
        encoded
        == b"<record><first>1</first><second>2</second><third>3</third></record>"
    )


def test_unknown_properties_left_out() -> None:
    encoder = RecordEncoder(schema_of({"email": {}}))

    encoded = encoder.encode({"email": "zoe@example.com", "extra": "dropped"})

    assert encoded == b"<record><email>zoe@example.com</email></record>"


# Objects and arrays


def test_object_as_compact_json() -> None:
    value = {"city": "Zürich", "tags": ["a", "b"], "active": True, "note": None}

    encoded = encode_one(value, {"type": "object"})

    assert (
        encoded
        == (
            '<record><a>{"city":"Zürich","tags":["a","b"],"active":true,"note":null}'
            "</a></record>"
        ).encode()
    )


def test_array_as_compact_json() -> None:
    value = [1, "二", {"k": 2**70}, [False]]

    encoded = encode_one(value, {"type": "array"})

    assert (
        encoded
        == (
            '<record><a>[1,"二",{"k":1180591620717411303424},[false]]</a></record>'
        ).encode()
    )


def test_nested_decimals_positional() -> None:
    value = {"price": decimal.Decimal("1E+2"), "rate": [decimal.Decimal("1E-7")]}

    encoded = encode_one(value, {"type": "object"})

    assert encoded == b'<record><a>{"price":100,"rate":[0.0000001]}</a></record>'


def test_json_text_escaped() -> None:
    value = {"html": "<b>Tom & Jerry</b>"}

    encoded = encode_one(value, {"type": "object"})

    assert encoded == (
        b'<record><a>{"html":"&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;"}</a></record>'
    )


# Element names


@pytest.mark.parametrize(
    ("property_name", "expected"),
    [
        ("first name", "first_name"),
        ("ns:field", "ns_field"),
        ("user@domain", "user_domain"),
        ("#tag", "_tag"),
        ("a/b", "a_b"),
        ("1st", "_1st"),
        ("-minus", "_-minus"),
        (".dot", "_.dot"),
        ("", "_"),
        ("café", "café"),
        ("日本語", "日本語"),
        ("plain_name", "plain_name"),
        ("with-dash.and.dot", "with-dash.and.dot"),
    ],
)
def test_element_name_rewrite(property_name: str, expected: str) -> None:
    assert to_element_name(property_name) == expected


def test_rewritten_name_used_in_xml() -> None:
    encoder = RecordEncoder(schema_of({"first name": {}, "1st": {}, "café": {}}))

    encoded = encoder.encode({"first name": "Ann", "1st": 1, "café": "x"})

    assert (
        encoded
        == (
            "<record><first_name>Ann</first_name><_1st>1</_1st><café>x</café></record>"
        ).encode()
    )


def test_renamed_fields_lists_rewrites() -> None:
    encoder = RecordEncoder(schema_of({"first name": {}, "email": {}, "1st": {}}))

    assert encoder.renamed_fields == {"first name": "first_name", "1st": "_1st"}


def test_colliding_names_rejected() -> None:
    with pytest.raises(SchemaNotSupportedError) as caught:
        RecordEncoder(schema_of({"first name": {}, "first_name": {}}))

    assert "'first name'" in str(caught.value)
    assert "'first_name'" in str(caught.value)


# Bodies


def test_body_starts_with_declaration() -> None:
    body = build_body([b"<record><a>1</a></record>"])

    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<records>")


def test_body_ends_with_records() -> None:
    body = build_body([b"<record><a>1</a></record>"])

    assert body.endswith(b"</records>")


def test_body_joins_fragments() -> None:
    body = build_body([b"<record><a>1</a></record>", b"<record><a>2</a></record>"])

    assert body == (
        b"<?xml version='1.0' encoding='utf-8'?>\n<records>"
        b"<record><a>1</a></record><record><a>2</a></record></records>"
    )


def test_body_overhead_is_empty_body() -> None:
    assert len(build_body([])) == BODY_OVERHEAD


# Agreement with lxml


@settings(database=None, deadline=None, max_examples=300)
@given(st.text())
def test_encoder_matches_lxml(text: str) -> None:
    encoder = RecordEncoder(schema_of({"note": {"type": "string"}}))
    record = etree.Element("record")
    etree.SubElement(record, "note").text = keep_xml_chars(text)

    encoded = encoder.encode({"note": text})

    assert encoded == etree.tostring(record, encoding="utf-8")


@settings(database=None, deadline=None, max_examples=300)
@given(st.text())
def test_body_parses_back_to_text(text: str) -> None:
    encoder = RecordEncoder(schema_of({"note": {"type": "string"}}))

    body = build_body([encoder.encode({"note": text})])
    root = etree.fromstring(body)

    assert root.tag == "records"
    assert (root[0][0].text or "") == keep_xml_chars(text)
