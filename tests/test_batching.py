"""Unit tests of packing encoded records into uploads under the API's caps."""

from __future__ import annotations

import math

import pytest

from target_customergauge_stream.batching import (
    RecordTooLargeError,
    Upload,
    UploadPacker,
)
from target_customergauge_stream.payload import BODY_OVERHEAD, RecordEncoder

FRAGMENT_START = b"<record><a>"
FRAGMENT_END = b"</a></record>"
MAX_BYTES = 2 * 1024 * 1024


def fragment_of_size(size: int, fill: bytes = b"x") -> bytes:
    """Build a `<record>` element of exactly `size` bytes."""
    text_size = size - len(FRAGMENT_START) - len(FRAGMENT_END)
    return FRAGMENT_START + fill * text_size + FRAGMENT_END


def add_many(
    packer: UploadPacker, stream: str, count: int, first_position: int = 1
) -> None:
    fragment = fragment_of_size(40)
    for position in range(first_position, first_position + count):
        packer.add(stream, fragment, position)


# Byte cap


def test_body_of_max_bytes_fits() -> None:
    packer = UploadPacker(max_bytes=BODY_OVERHEAD + 200, max_records=2000)

    packer.add("customers", fragment_of_size(100), 1)
    packer.add("customers", fragment_of_size(100), 2)
    uploads = packer.take_all()

    assert [upload.record_count for upload in uploads] == [2]
    assert uploads[0].size == BODY_OVERHEAD + 200
    assert len(uploads[0].body()) == uploads[0].size


def test_one_byte_over_closes_upload() -> None:
    packer = UploadPacker(max_bytes=BODY_OVERHEAD + 200, max_records=2000)

    packer.add("customers", fragment_of_size(100), 1)
    packer.add("customers", fragment_of_size(101), 2)

    assert packer.has_closed("customers")
    closed = packer.take_closed("customers")
    assert [upload.record_count for upload in closed] == [1]
    assert closed[0].last_position == 1
    assert len(closed[0].body()) == closed[0].size
    remaining = packer.take_all()
    assert [upload.first_position for upload in remaining] == [2]
    assert len(remaining[0].body()) == remaining[0].size


def test_size_matches_encoded_body() -> None:
    encoder = RecordEncoder({"properties": {"name": {}, "comment": {}}})
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2000)
    records = [
        {"name": "Zoë", "comment": "Fish & Chips"},
        {"name": "日本", "comment": "😀 <3"},
    ]

    for position, record in enumerate(records, start=1):
        packer.add("customers", encoder.encode(record), position)
    upload = packer.take_all()[0]

    assert len(upload.body()) == upload.size


@pytest.mark.parametrize(
    ("character", "width"),
    [("é", 2), ("日", 3), ("😀", 4)],
    ids=["2-byte", "3-byte", "4-byte"],
)
def test_cap_counts_utf8_bytes(character: str, width: int) -> None:
    encoder = RecordEncoder({"properties": {"a": {}}})
    fragment = encoder.encode({"a": character * 50})
    byte_size = len(FRAGMENT_START) + 50 * width + len(FRAGMENT_END)
    character_count = len(fragment.decode("utf-8"))
    # Two fragments fit only when counted in characters, not in bytes.
    packer = UploadPacker(
        max_bytes=BODY_OVERHEAD + byte_size + character_count, max_records=2000
    )

    packer.add("customers", fragment, 1)
    packer.add("customers", fragment, 2)
    uploads = packer.take_all()

    assert len(fragment) == byte_size
    assert [upload.record_count for upload in uploads] == [1, 1]
    assert [upload.size for upload in uploads] == [BODY_OVERHEAD + byte_size] * 2


def test_multibyte_body_at_cap_fits() -> None:
    encoder = RecordEncoder({"properties": {"a": {}}})
    fragment = encoder.encode({"a": "é😀" * 30})
    packer = UploadPacker(max_bytes=BODY_OVERHEAD + 2 * len(fragment), max_records=2000)

    packer.add("customers", fragment, 1)
    packer.add("customers", fragment, 2)
    uploads = packer.take_all()

    assert [upload.record_count for upload in uploads] == [2]
    assert len(uploads[0].body()) == packer.max_bytes


# Record cap


def test_max_records_in_one_upload() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2000)

    add_many(packer, "customers", 2000)
    uploads = packer.take_all()

    assert [upload.record_count for upload in uploads] == [2000]


def test_one_record_over_opens_second() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2000)

    add_many(packer, "customers", 2001)
    uploads = packer.take_all()

    assert [upload.record_count for upload in uploads] == [2000, 1]
    assert [upload.first_position for upload in uploads] == [1, 2001]
    assert [upload.last_position for upload in uploads] == [2000, 2001]


def test_upload_closes_at_max_records() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=3)

    add_many(packer, "customers", 3)

    assert packer.has_closed("customers")


@pytest.mark.parametrize("count", [1, 2, 3, 4, 6, 7, 13])
def test_uploads_needed_is_ceiling(count: int) -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=3)

    add_many(packer, "customers", count)
    uploads = packer.take_all()

    assert len(uploads) == math.ceil(count / 3)
    assert sum(upload.record_count for upload in uploads) == count


# Records too large for any upload


def test_record_alone_at_cap_fits() -> None:
    packer = UploadPacker(max_bytes=1024, max_records=2000)

    packer.add("customers", fragment_of_size(1024 - BODY_OVERHEAD), 1)
    uploads = packer.take_all()

    assert len(uploads[0].body()) == 1024


def test_too_large_record_rejected() -> None:
    packer = UploadPacker(max_bytes=1024, max_records=2000)
    size = 1024 - BODY_OVERHEAD + 1

    with pytest.raises(RecordTooLargeError) as caught:
        packer.add("customers", fragment_of_size(size), 7)

    message = str(caught.value)
    assert "'customers'" in message
    assert "input line 7" in message
    assert f"{size:,} bytes" in message
    assert "1,024-byte cap" in message
    assert "'max_upload_bytes'" in message


def test_too_large_error_attributes() -> None:
    packer = UploadPacker(max_bytes=1024, max_records=2000)

    with pytest.raises(RecordTooLargeError) as caught:
        packer.add("customers", fragment_of_size(5000), 9)

    assert caught.value.stream == "customers"
    assert caught.value.position == 9
    assert caught.value.size == 5000
    assert caught.value.max_bytes == 1024


def test_too_large_keeps_earlier_records() -> None:
    packer = UploadPacker(max_bytes=1024, max_records=2000)
    packer.add("customers", fragment_of_size(100), 5)
    packer.add("customers", fragment_of_size(100), 6)

    with pytest.raises(RecordTooLargeError):
        packer.add("customers", fragment_of_size(5000), 7)

    assert packer.count("customers") == 2
    uploads = packer.take_all()
    assert [(upload.first_position, upload.last_position) for upload in uploads] == [
        (5, 6)
    ]


# Several streams and taking uploads


def test_take_all_oldest_first() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2)

    packer.add("customers", fragment_of_size(40), 1)
    packer.add("orders", fragment_of_size(40), 2)
    packer.add("orders", fragment_of_size(40), 3)
    packer.add("customers", fragment_of_size(40), 4)
    packer.add("orders", fragment_of_size(40), 5)
    uploads = packer.take_all()

    assert [upload.sequence for upload in uploads] == [1, 2, 3]
    assert [upload.stream for upload in uploads] == ["customers", "orders", "orders"]
    assert [upload.first_position for upload in uploads] == [1, 2, 5]


def test_take_all_empties_packer() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2)
    add_many(packer, "customers", 3)

    packer.take_all()

    assert packer.count("customers") == 0
    assert packer.take_all() == []


def test_take_closed_leaves_open_upload() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2)
    add_many(packer, "customers", 5)

    closed = packer.take_closed("customers")

    assert [upload.first_position for upload in closed] == [1, 3]
    assert not packer.has_closed("customers")
    assert packer.count("customers") == 1


def test_take_closed_of_other_stream() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2)
    add_many(packer, "customers", 2)

    assert packer.take_closed("orders") == []
    assert packer.has_closed("customers")


def test_count_includes_closed_uploads() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2)

    add_many(packer, "customers", 5)
    add_many(packer, "orders", 1, first_position=6)

    assert packer.count("customers") == 5
    assert packer.count("orders") == 1
    assert packer.count("unknown") == 0


def test_close_moves_open_upload() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2000)
    add_many(packer, "customers", 3)

    packer.close("customers")

    assert packer.has_closed("customers")
    assert [upload.record_count for upload in packer.take_closed("customers")] == [3]


def test_close_without_open_upload() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2000)

    packer.close("customers")

    assert not packer.has_closed("customers")


def test_record_after_close_opens_upload() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2000)
    add_many(packer, "customers", 2)
    packer.close("customers")

    add_many(packer, "customers", 1, first_position=3)
    uploads = packer.take_all()

    assert [upload.record_count for upload in uploads] == [2, 1]
    assert [upload.sequence for upload in uploads] == [1, 2]


def test_positions_span_upload() -> None:
    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2000)

    for position in (10, 11, 14):
        packer.add("customers", fragment_of_size(40), position)
    upload = packer.take_all()[0]

    assert upload.first_position == 10
    assert upload.last_position == 14


def test_on_open_called_per_upload() -> None:
    opened: list[tuple[int, str, int, int]] = []

    def remember(upload: Upload) -> None:
        opened.append(
            (upload.sequence, upload.stream, upload.first_position, upload.record_count)
        )

    packer = UploadPacker(max_bytes=MAX_BYTES, max_records=2, on_open=remember)
    add_many(packer, "customers", 3, first_position=1)
    add_many(packer, "orders", 1, first_position=4)
    add_many(packer, "customers", 2, first_position=5)

    assert opened == [
        (1, "customers", 1, 0),
        (2, "customers", 3, 0),
        (3, "orders", 4, 0),
        (4, "customers", 6, 0),
    ]
