"""The Bloom filter that spares ledger lookups."""

from __future__ import annotations

import hashlib

from target_customergauge_stream.bloom import DigestBloomFilter


def digest(number: int) -> str:
    return hashlib.sha256(f"key-{number}".encode()).hexdigest()


def test_added_digests_always_found() -> None:
    bloom = DigestBloomFilter(expected=20_000)

    for number in range(20_000):
        bloom.add(digest(number))

    assert all(digest(number) in bloom for number in range(20_000))
    assert bloom.count == 20_000


def test_false_positives_stay_rare() -> None:
    bloom = DigestBloomFilter(expected=20_000)
    for number in range(20_000):
        bloom.add(digest(number))

    false_positives = sum(digest(number) in bloom for number in range(20_000, 120_000))

    # About 1.2% is expected at capacity; 3% leaves room for chance.
    assert false_positives < 3_000


def test_non_text_never_found() -> None:
    assert 12345 not in DigestBloomFilter()


def test_capacity_follows_expected_size() -> None:
    assert DigestBloomFilter(expected=1_000_000).capacity == 1_000_000
    assert DigestBloomFilter().capacity == (1 << 20) // 10
