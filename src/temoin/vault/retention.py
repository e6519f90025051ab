"""Retention: each recording is deleted when its legal profile's period ends, unless a hold for a
procedure keeps it. Deletion destroys the data key first (crypto-shredding, one transaction with
the journal entry and the certificate), then the blobs: a crash in between leaves only unreadable
bytes, which the next sweep removes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.evidence.canonical import canonical_bytes
from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.profiles import get_profile
from temoin.platform import Platform
from temoin.vault.models import DeletionCertificate, Hold, Recording, RecordingState

BATCH = 500


class HoldForbidsDeletion(Exception):
    pass


@dataclass
class SweepResult:
    deleted: list[str] = field(default_factory=list)
    held: int = 0
    blobs_removed: int = 0
    orphans_removed: int = 0


def active_hold(db: Session, recording_id: str) -> Hold | None:
    return db.scalar(select(Hold).where(Hold.recording_id == recording_id, Hold.lifted_at.is_(None)).limit(1))


def _held():  # noqa: ANN202
    return exists().where(Hold.recording_id == Recording.id, Hold.lifted_at.is_(None))


# Quarantined and never-completed uploads are personal data too: the same period applies to them.
KEPT_STATES = (RecordingState.STORED, RecordingState.QUARANTINED, RecordingState.RECEIVING)


def due_ids(db: Session, now: datetime, limit: int) -> list[str]:
    return list(db.scalars(select(Recording.id).where(
        Recording.state.in_(KEPT_STATES), Recording.retention_until <= now, ~_held())
        .order_by(Recording.retention_until).limit(limit)))


def delete_recording(p: Platform, db: Session, rec: Recording, *, reason: str, actor: Actor,
                     rule: str, now: datetime | None = None, details: dict | None = None) -> DeletionCertificate:
    """Destroy one recording's data key and write its certificate and journal entry (caller commits)."""
    if active_hold(db, rec.id) is not None:
        raise HoldForbidsDeletion(f"{rec.id} is on hold for a procedure: lift the hold first")
    now = now or utcnow()
    tenant = db.get(Tenant, rec.tenant_id)
    assert tenant is not None
    body = canonical_bytes({
        "schema": "temoin.deletion-certificate/1", "recording_id": rec.id, "tenant": tenant.slug,
        "camera_id": rec.device_id, "agent": rec.agent_ref, "started_at": rec.started_at.isoformat(),
        "ended_at": rec.ended_at.isoformat(), "manifest_sha256": rec.manifest_sha256,
        "chain_head": rec.chain_head, "retention_until": rec.retention_until.isoformat(),
        "deleted_at": now.isoformat(), "reason": reason, "rule": rule,
        "platform_key_id": p.keyring.public_key_id, **(details or {})})
    cert = DeletionCertificate(tenant_id=tenant.id, recording_id=rec.id, deleted_at=now, body=body.decode(),
                               signature=p.keyring.sign(body))
    db.add(cert)
    rec.wrapped_key, rec.state, rec.deleted_at, rec.state_reason = None, RecordingState.DELETED, now, reason
    p.record(db, EntryDraft(action=Action.ERASURE, event=f"recording.deleted.{reason}", actor=actor,
                            recordings=[rec.id], cameras=[rec.device_id],
                            details={"rule": rule, "retention_until": rec.retention_until.isoformat(),
                                     **(details or {})}), tenant)
    return cert


def sweep(p: Platform, db: Session, now: datetime | None = None,
          progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Delete every recording whose period is over and that no hold keeps."""
    now = now or utcnow()
    result = SweepResult()
    actor = Actor.system("retention")
    total = len(due_ids(db, now, 10**9)) if progress else 0
    profiles: dict[int, tuple[str, str]] = {}
    while True:
        ids = due_ids(db, now, BATCH)
        if not ids:
            break
        recs = db.scalars(select(Recording).where(Recording.id.in_(ids))).all()
        for rec in recs:
            if rec.tenant_id not in profiles:
                tenant = db.get(Tenant, rec.tenant_id)
                profile = get_profile(tenant.profile)
                profiles[rec.tenant_id] = (tenant.slug, f"{profile.id}: {profile.retention.describe()}")
            delete_recording(p, db, rec, reason="retention", actor=actor, rule=profiles[rec.tenant_id][1], now=now)
        db.commit()  # keys destroyed and journaled: from here the bytes are unreadable
        for rec in recs:
            result.blobs_removed += p.store.delete_prefix(f"{profiles[rec.tenant_id][0]}/{rec.id}")
            result.deleted.append(rec.id)
        if progress:
            progress(len(result.deleted), total)
    result.orphans_removed = remove_orphans(p, db)
    result.held = db.scalar(select(func.count()).select_from(Recording).where(
        Recording.state.in_(KEPT_STATES), Recording.retention_until <= now, _held())) or 0
    return result


def remove_orphans(p: Platform, db: Session) -> int:
    """Blobs of recordings already deleted (a sweep killed after its commit) are removed now."""
    removed = 0
    batch: list[str] = []

    def flush() -> int:
        ids = {prefix.split("/", 1)[1]: prefix for prefix in batch}
        gone = db.scalars(select(Recording.id).where(Recording.id.in_(ids), Recording.state == RecordingState.DELETED))
        count = sum(p.store.delete_prefix(ids[rid]) for rid in gone)
        batch.clear()
        return count

    for prefix in p.store.prefixes():
        batch.append(prefix)
        if len(batch) >= BATCH:
            removed += flush()
    return removed + (flush() if batch else 0)
