"""Sealing on the device: each segment and each checkpoint's GPS fixes, encrypted under the recording's data key.

AES-256-GCM in `temoin.evidence.crypto`'s blob format; `_open` is the only way back to plaintext, used to
verify a prefix and to read segments back for hand-over. One place, so that what decrypts on the camera stays
easy to audit.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

from temoin.evidence.canonical import b64d, b64e, canonical_bytes
from temoin.evidence.crypto import Sealer, new_header, open_records
from temoin.evidence.manifest import GpsFix


def _seal(data_key: bytes, plaintext: bytes) -> bytes:
    header = new_header()
    return header + Sealer(data_key, header).seal(plaintext)


def _open(data_key: bytes, blob: bytes) -> bytes:
    return b"".join(open_records(io.BytesIO(blob), data_key))


def _seal_fixes(data_key: bytes, fixes: Sequence[GpsFix]) -> str | None:
    if not fixes:
        return None
    return b64e(_seal(data_key, canonical_bytes([f.model_dump(mode="json") for f in fixes])))


def _open_fixes(data_key: bytes, sealed: str | None) -> list[GpsFix]:
    if sealed is None:
        return []
    return [GpsFix.model_validate(f) for f in json.loads(_open(data_key, b64d(sealed)))]
