"""Canonical bytes for signing and hashing: sorted keys, no whitespace, UTF-8.

Both sides (camera and vault) must produce the same bytes for the same object; orjson with
sorted keys does, and is fast enough for the journal's million-entry verification.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson


def canonical_bytes(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
