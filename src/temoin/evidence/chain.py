"""The segment hash chain: each segment's SHA-256 chained to the previous.

link_0 = SHA-256("temoin-chain-v1" || recording_id || sha256(segment_0))
link_i = SHA-256(link_{i-1} || sha256(segment_i))

The recording id in the first link binds every segment to its recording, so a segment
replayed from another recording cannot fit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

GENESIS_TAG = b"temoin-chain-v1"


def first_link(recording_id: str, segment_sha256: bytes) -> bytes:
    return hashlib.sha256(GENESIS_TAG + recording_id.encode() + segment_sha256).digest()


def next_link(previous: bytes, segment_sha256: bytes) -> bytes:
    return hashlib.sha256(previous + segment_sha256).digest()


def chain_links(recording_id: str, segment_hashes: Iterable[bytes]) -> list[bytes]:
    links: list[bytes] = []
    for digest in segment_hashes:
        links.append(first_link(recording_id, digest) if not links else next_link(links[-1], digest))
    return links
