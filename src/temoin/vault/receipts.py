"""What a recording's signed receipt says (read by the catalogue and by the scrub, which must not import each
other)."""

from __future__ import annotations

import orjson

from temoin.vault.models import Recording


def declared_lost(rec: Recording) -> list[int]:
    """The segments the vault's signed receipt names as lost at the camera (what the camera was told)."""
    if not rec.receipt:
        return []
    return list(orjson.loads(rec.receipt).get("receipt", {}).get("lost_segments") or [])
