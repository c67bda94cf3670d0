"""A Bloom filter over SHA-256 hex digests, to skip ledger lookups for new keys."""

from __future__ import annotations

# 4 probes at 10 bits per key give about 1.2% false positives
# (https://en.wikipedia.org/wiki/Bloom_filter#Probability_of_false_positives);
# 7 probes would give 0.8% at almost twice the cost per key.
_PROBES = 4
_BITS_PER_KEY = 10
_MIN_BITS = 1 << 20


class DigestBloomFilter:
    """Tell, for a SHA-256 hex digest, "certainly not added" or "maybe added".

    The digest is already uniformly random, so its first 32 hex digits give
    the two base hashes of double hashing. The filter does not grow: the
    caller replaces it once `count` passes `capacity`.
    """

    def __init__(self, expected: int = 0) -> None:
        self._size_bits = max(_MIN_BITS, expected * _BITS_PER_KEY)
        self._bits = bytearray(self._size_bits // 8 + 1)
        self.count = 0

    @property
    def capacity(self) -> int:
        """Number of digests the filter takes at about 1% false positives."""
        return self._size_bits // _BITS_PER_KEY

    def add(self, digest: str) -> None:
        """Add one digest."""
        first = int(digest[:16], 16)
        step = int(digest[16:32], 16) | 1
        size = self._size_bits
        bits = self._bits
        for probe in range(_PROBES):
            position = (first + probe * step) % size
            bits[position >> 3] |= 1 << (position & 7)
        self.count += 1

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        first = int(digest[:16], 16)
        step = int(digest[16:32], 16) | 1
        size = self._size_bits
        bits = self._bits
        for probe in range(_PROBES):
            position = (first + probe * step) % size
            if not bits[position >> 3] & (1 << (position & 7)):
                return False
        return True
