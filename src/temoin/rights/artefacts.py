"""Access copies as artefacts of their recording (vault.derived): the face thumbnails, the face tracks and the
redacted copy, destroyed with the recording."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.rights.models import CopyState, RedactedCopy
from temoin.vault import artefact_blobs
from temoin.vault.context import VaultContext
from temoin.vault.derived import ACCESS_COPY, Artefact

COPY_FILES = {"thumbnails.sealed": "face thumbnails", "tracks.sealed": "face tracks", "copy.sealed": "redacted copy"}


def _copy_artefact(p: VaultContext, copy: RedactedCopy) -> Artefact:
    folder = f"rights/{copy.folder or f'missing-copy-{copy.id}'}"
    present = [
        name
        for name in COPY_FILES
        if artefact_blobs.exists(p.store, artefact_blobs.key(folder, name), p.settings.home / folder / name)
    ]
    return Artefact(ACCESS_COPY, str(copy.id), (folder,), tuple(COPY_FILES[n] for n in present), copy.sha256)


class AccessCopies:
    kind = ACCESS_COPY

    def of_recordings(self, p: VaultContext, db: Session, rows: Sequence[Any]) -> Iterable[tuple[str, Artefact]]:
        for copy in db.scalars(
            select(RedactedCopy)
            .where(RedactedCopy.recording_id.in_([r.id for r in rows]), RedactedCopy.state != CopyState.DELETED.value)
            .order_by(RedactedCopy.id)
        ):
            yield copy.recording_id, _copy_artefact(p, copy)

    def clear(self, db: Session, artefact: Artefact, now: datetime, reason: str) -> bool:
        copy = db.get_one(RedactedCopy, int(artefact.id))  # listed from this row
        if copy.state == CopyState.DELETED.value:
            return False
        copy.state, copy.data_key = CopyState.DELETED.value, None
        copy.error = f"deleted with its recording ({reason}) on {now:%Y-%m-%d}"
        return True

    def stale_files(self, p: VaultContext, db: Session, older_than: float) -> list[str]:
        live = {
            f"rights/{row[0]}"
            for row in db.execute(
                select(RedactedCopy.folder).where(
                    RedactedCopy.state != CopyState.DELETED.value, RedactedCopy.folder.is_not(None)
                )
            )
        }
        found = artefact_blobs.names_older_than(p.store, p.settings.home, "rights", "*/copy-*", older_than)
        return sorted(found - live)

    def expire(self, p: VaultContext, db: Session, now: datetime) -> int:
        return 0  # a copy lives as long as its request's recording


ACCESS_COPIES = AccessCopies()
