"""Server-side backups of a live feed as artefacts of the recordings of the same camera at the same time
(vault.derived): destroyed with them, and past the recordings' period on their own."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.profiles import get_profile
from temoin.live.models import LiveSession
from temoin.vault import artefact_blobs
from temoin.vault.context import VaultContext
from temoin.vault.derived import LIVE_BACKUP, Artefact, remove_files
from temoin.vault.models import Recording, RecordingState


class LiveBackups:
    kind = LIVE_BACKUP

    def of_recordings(self, p: VaultContext, db: Session, rows: Sequence[Any]) -> Iterable[tuple[str, Artefact]]:
        # One query for the batch (the sweep erases 500 recordings at a time; backups are few): the cameras'
        # sessions with a backup, matched here to each recording's camera and time (the backup overlaps it).
        sessions = list(
            db.scalars(
                select(LiveSession)
                .where(
                    LiveSession.device_id.in_({rec.device_id for rec in rows}),
                    LiveSession.backup_file.is_not(None),
                )
                .order_by(LiveSession.requested_at)
            )
        )
        if not sessions:
            return
        for rec in rows:
            for s in sessions:
                if (
                    s.tenant_id == rec.tenant_id
                    and s.device_id == rec.device_id
                    and s.requested_at <= rec.ended_at
                    and (s.ended_at is None or s.ended_at >= rec.started_at)
                ):
                    assert s.backup_file is not None, "selected with backup_file IS NOT NULL"
                    yield rec.id, Artefact(LIVE_BACKUP, s.id, (s.backup_file,), ("live backup",), s.backup_sha256)

    def clear(self, db: Session, artefact: Artefact, now: datetime, reason: str) -> bool:
        s = db.get_one(LiveSession, artefact.id)  # the artefact was listed from this row
        if s.backup_file is None:
            return False
        s.backup_key, s.backup_file = None, None  # the hash and size stay, as proof of what was there
        return True

    def stale_files(self, p: VaultContext, db: Session, older_than: float) -> list[str]:
        backups = set(db.scalars(select(LiveSession.backup_file).where(LiveSession.backup_file.is_not(None))))
        top = str(p.settings.live_backup_dir.relative_to(p.settings.home))
        found = artefact_blobs.names_older_than(p.store, p.settings.home, top, "*/*.sealed", older_than)
        return sorted(found - backups)

    def expire(self, p: VaultContext, db: Session, now: datetime) -> int:
        """Live backups are personal data under the same period as recordings: one whose period is over goes,
        unless a recording of the same camera and time is still kept (by a hold: the backup goes with it later).
        Journaled."""
        gone: list[tuple[LiveSession, str]] = []
        tenants = {t.id: t for t in db.scalars(select(Tenant))}
        for s in db.scalars(select(LiveSession).where(LiveSession.backup_file.is_not(None))):
            tenant = tenants[s.tenant_id]
            if get_profile(tenant.profile).retention.deadline(s.requested_at) > now:
                continue
            kept = db.scalar(
                select(Recording.id)
                .where(
                    Recording.tenant_id == s.tenant_id,
                    Recording.device_id == s.device_id,
                    Recording.state != RecordingState.DELETED,
                    Recording.started_at <= (s.ended_at or now),
                    Recording.ended_at >= s.requested_at,
                )
                .limit(1)
            )
            if kept is None:
                assert s.backup_file is not None, "selected with backup_file IS NOT NULL"
                gone.append((s, s.backup_file))
        for s, path in gone:
            p.record(
                db,
                EntryDraft(
                    action=Action.ERASURE,
                    event="live.backup_deleted",
                    actor=Actor.system("retention"),
                    cameras=[s.device_id],
                    details={"live_session": s.id, "file": path, "sha256": s.backup_sha256, "reason": "retention"},
                ),
                tenants[s.tenant_id],
            )
            s.backup_key, s.backup_file = None, None
        db.commit()
        return remove_files(p, [path for _, path in gone])


LIVE_BACKUPS = LiveBackups()
