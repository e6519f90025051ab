"""Retention: each recording is deleted when its legal profile's period ends, unless a hold for a
procedure keeps it. Deletion destroys the data key first (crypto-shredding, one transaction with
the journal entry and the certificate), then the blobs: a crash in between leaves only unreadable
bytes, which the next sweep removes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from temoin import errors
from temoin.db import utcnow
from temoin.evidence.canonical import canonical_bytes
from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.profiles import get_profile
from temoin.vault import derived
from temoin.vault.context import VaultContext
from temoin.vault.limitation import RecordingLimited, active_limitations, limited
from temoin.vault.models import DeletionCertificate, Hold, PendingBlobDeletion, Recording, RecordingState

BATCH = 500
# Threads removing a batch's blob folders while the next batch is erased: file system calls release the GIL, and
# a virtual disk serves several unlinks at once far faster than one after the other (≈ 0.2 against 2-5 ms a
# folder measured here).
REMOVERS = 4


class HoldForbidsDeletion(errors.Conflict):
    pass


@dataclass
class SweepResult:
    deleted: list[str] = field(default_factory=list)
    held: int = 0
    blobs_removed: int = 0
    orphans_removed: int = 0
    derived_removed: int = 0  # access copies, live backups, packages made from the deleted recordings
    live_backups_expired: int = 0  # live backups past their period that no kept recording covers


def active_hold(db: Session, recording_id: str) -> Hold | None:
    return db.scalar(select(Hold).where(Hold.recording_id == recording_id, Hold.lifted_at.is_(None)).limit(1))


def _held():
    # A hold for a procedure, or a limitation request (vault.limitation): kept past its period until lifted.
    return or_(exists().where(Hold.recording_id == Recording.id, Hold.lifted_at.is_(None)), limited())


# Quarantined and never-completed uploads are personal data too: the same period applies to them.
KEPT_STATES = (RecordingState.STORED, RecordingState.QUARANTINED, RecordingState.RECEIVING)


def due_ids(db: Session, now: datetime, limit: int) -> list[str]:
    return list(
        db.scalars(
            select(Recording.id)
            .where(Recording.state.in_(KEPT_STATES), Recording.retention_until <= now, ~_held())
            .order_by(Recording.retention_until)
            .limit(limit)
        )
    )


_CERT_COLUMNS = (
    Recording.id,
    Recording.tenant_id,
    Recording.device_id,
    Recording.agent_ref,
    Recording.started_at,
    Recording.ended_at,
    Recording.manifest_sha256,
    Recording.chain_head,
    Recording.retention_until,
)


def _certify(
    row: Any,
    made: dict[str, list[derived.Artefact]],
    tenants: dict[int, Tenant],
    rules: dict[int, str],
    certificates: list[dict],
    by_tenant: dict[int, list[EntryDraft]],
    *,
    key_id: str,
    sign: Callable[[bytes], str],
    reason: str,
    actor: Actor,
    now: datetime,
    details: dict | None,
) -> None:
    """One recording's signed certificate and erasure entry, added to `certificates` and `by_tenant`."""
    artefacts = [a.describe() for a in made[row.id]]
    tenant, rule = tenants[row.tenant_id], rules[row.tenant_id]
    body = canonical_bytes(
        {
            "schema": "temoin.deletion-certificate/1",
            "recording_id": row.id,
            "tenant": tenant.slug,
            "camera_id": row.device_id,
            "agent": row.agent_ref,
            "started_at": row.started_at.isoformat(),
            "ended_at": row.ended_at.isoformat(),
            "manifest_sha256": row.manifest_sha256,
            "chain_head": row.chain_head,
            "retention_until": row.retention_until.isoformat(),
            "deleted_at": now.isoformat(),
            "reason": reason,
            "rule": rule,
            "platform_key_id": key_id,
            "derived": artefacts,
            **(details or {}),
        }
    )
    certificates.append(
        {
            "tenant_id": tenant.id,
            "recording_id": row.id,
            "deleted_at": now,
            "body": body.decode(),
            "signature": sign(body),
        }
    )
    by_tenant.setdefault(tenant.id, []).append(
        EntryDraft(
            action=Action.ERASURE,
            event=f"recording.deleted.{reason}",
            actor=actor,
            recordings=[row.id],
            cameras=[row.device_id],
            details={
                "rule": rule,
                "retention_until": row.retention_until.isoformat(),
                "derived": [{"kind": a["kind"], "id": a["id"]} for a in artefacts],
                **(details or {}),
            },
        )
    )


def _erase(
    p: VaultContext,
    db: Session,
    rows: Sequence[Any],
    tenants: dict[int, Tenant],
    *,
    reason: str,
    actor: Actor,
    rules: dict[int, str],
    now: datetime,
    details: dict | None = None,
) -> list[str]:
    """Destroy the data keys of `rows` (recordings, as _CERT_COLUMNS) and of everything made from them, sign one
    certificate each (listing those artefacts) and journal each erasure, in the caller's transaction. Batched: one
    statement per table, one head move per chain. Returns the artefacts' files, to remove once committed."""
    certificates: list[dict] = []
    by_tenant: dict[int, list[EntryDraft]] = {}
    made = derived.of_recordings(p, db, rows)
    # One key names and signs every certificate of the batch, a rotation waiting meanwhile; one made between the
    # caller's `now` and here moves the deletion time to the new key's start, when that key can vouch for it.
    with p.keyring.signing() as signer:
        now = max(now, signer.since or now)
        key_id = signer.key_id
        for row in rows:
            _certify(
                row,
                made,
                tenants,
                rules,
                certificates,
                by_tenant,
                key_id=key_id,
                sign=signer.sign,
                reason=reason,
                actor=actor,
                now=now,
                details=details,
            )
    db.execute(insert(DeletionCertificate), certificates)
    db.execute(
        update(Recording)
        .where(Recording.id.in_([r.id for r in rows]))
        .values(wrapped_key=None, state=RecordingState.DELETED, deleted_at=now, state_reason=reason)
        .execution_options(synchronize_session=False)
    )
    for tenant_id, drafts in by_tenant.items():
        tenant = tenants[tenant_id]
        p.journal.write_many(db, drafts, tenant_id=tenant.id, tenant_slug=tenant.slug)
    return derived.destroy(db, (a for row in rows for a in made[row.id]), now, reason)


def _rule(tenant: Tenant) -> str:
    profile = get_profile(tenant.profile)
    return f"{profile.id}: {profile.retention.describe()}"


def delete_recording(
    p: VaultContext,
    db: Session,
    rec: Recording,
    *,
    reason: str,
    actor: Actor,
    rule: str | None = None,
    now: datetime | None = None,
    details: dict | None = None,
) -> list[str]:
    """Destroy one recording's data key and those of what was made from it, and write its certificate and journal
    entry (caller commits). Returns the files to remove once committed (`derived.remove_files`).

    Early deletion (a citizen's erasure request) goes through here; the retention sweep batches the same."""
    if active_hold(db, rec.id) is not None:
        raise HoldForbidsDeletion(f"{rec.id} is on hold for a procedure: lift the hold first")
    if active_limitations(db, [rec.id]):
        raise HoldForbidsDeletion(str(RecordingLimited(active_limitations(db, [rec.id]), "deleting it")))
    tenant = db.get_one(Tenant, rec.tenant_id)
    row = db.execute(select(*_CERT_COLUMNS).where(Recording.id == rec.id)).one()
    files = _erase(
        p,
        db,
        [row],
        {tenant.id: tenant},
        reason=reason,
        actor=actor,
        rules={tenant.id: rule or _rule(tenant)},
        now=now or utcnow(),
        details=details,
    )
    db.expire(rec)
    return files


def sweep(
    p: VaultContext,
    db: Session,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    orphans: bool = True,
) -> SweepResult:
    """Delete every recording whose period is over and that no hold keeps.

    Each batch's blob folders are recorded as pending deletions in the transaction that destroys the keys, and
    removed (in a thread, while the next batch is erased) once it has committed; a pass first finishes what a
    killed one left pending. `orphans` also runs the audit of the whole store (`remove_orphans`): rare, for what
    no record names (the server runs it at start-up, then daily).
    """
    now = now or utcnow()
    result = SweepResult()
    actor = Actor.system("retention")
    total = len(due_ids(db, now, 10**9)) if progress else 0
    tenants = {t.id: t for t in db.scalars(select(Tenant))}
    rules = {tid: _rule(t) for tid, t in tenants.items()}
    result.orphans_removed = remove_pending(p, db)
    with ThreadPoolExecutor(REMOVERS, thread_name_prefix="retention-blobs") as remover:
        # The previous batch's blobs being removed: (the removals, their prefixes, the derived files to remove).
        removing: tuple[list[Future[int]], list[str], list[str]] | None = None
        while True:
            ids = due_ids(db, now, BATCH)
            if ids:
                rows = db.execute(select(*_CERT_COLUMNS).where(Recording.id.in_(ids))).all()
                files = _erase(p, db, rows, tenants, reason="retention", actor=actor, rules=rules, now=now)
                prefixes = [f"{tenants[r.tenant_id].slug}/{r.id}" for r in rows]
                db.execute(insert(PendingBlobDeletion), [{"prefix": x, "recorded_at": now} for x in prefixes])
            if removing is not None:  # the previous batch's blobs: gone once this returns (or its error raised)
                result.blobs_removed += sum(f.result() for f in removing[0])
                result.derived_removed += derived.remove_files(p, removing[2])
                db.execute(delete(PendingBlobDeletion).where(PendingBlobDeletion.prefix.in_(removing[1])))
                removing = None
            db.commit()  # keys destroyed and journaled: from here the bytes are unreadable
            if not ids:
                break
            parts = [prefixes[i::REMOVERS] for i in range(REMOVERS)]
            removing = ([remover.submit(p.store.delete_prefixes, part) for part in parts if part], prefixes, files)
            result.deleted += [r.id for r in rows]
            if progress:
                progress(len(result.deleted), total)
    result.live_backups_expired = derived.expire(p, db, now).get(derived.LIVE_BACKUP, 0)
    if orphans:
        result.orphans_removed += remove_orphans(p, db) + derived.remove_orphans(p, db)
    result.held = (
        db.scalar(
            select(func.count())
            .select_from(Recording)
            .where(Recording.state.in_(KEPT_STATES), Recording.retention_until <= now, _held())
        )
        or 0
    )
    return result


def remove_pending(p: VaultContext, db: Session) -> int:
    """Remove the blob folders a killed pass recorded as pending and did not remove; returns the blobs removed.
    Only those of recordings deleted in the catalogue are touched, whatever a row says."""
    removed = 0
    while pending := list(db.scalars(select(PendingBlobDeletion.prefix).limit(BATCH))):
        ids = {prefix.split("/", 1)[-1]: prefix for prefix in pending}
        gone = db.scalars(select(Recording.id).where(Recording.id.in_(ids), Recording.state == RecordingState.DELETED))
        removed += p.store.delete_prefixes([ids[rid] for rid in gone])
        db.execute(delete(PendingBlobDeletion).where(PendingBlobDeletion.prefix.in_(pending)))
        db.commit()
    return removed


def first_trace_of_kept(db: Session, chain: str, before: datetime) -> int | None:
    """The seq of the first entry of journal `chain` written before `before` that names a recording not deleted
    (stored, quarantined or still arriving), or None. Only recordings received before `before` can be named there:
    past three years, those are the few kept by a hold."""
    from temoin.journal.models import JournalEntry

    kept = select(Recording.id).where(Recording.state != RecordingState.DELETED, Recording.received_at < before)
    tenant = db.scalar(select(Tenant).where(Tenant.slug == chain))
    if tenant is not None:  # a commune's chain names its own recordings; the platform chain may name any
        kept = kept.where(Recording.tenant_id == tenant.id)
    first: int | None = None
    for rid in db.scalars(kept):
        seq = db.scalar(
            select(func.min(JournalEntry.seq)).where(
                JournalEntry.chain == chain,
                JournalEntry.at < before,
                JournalEntry.body.contains(f'"{rid}"', autoescape=True),
            )
        )
        if seq is not None and (first is None or seq < first):
            first = seq
    return first


ORPHAN_BATCH = 5000


def remove_orphans(p: VaultContext, db: Session) -> int:
    """The audit of the whole store: blobs of recordings already deleted that no pending deletion names (a folder
    put back, a deletion from before pending deletions were recorded) are removed now. Lists every folder: rare."""
    removed = 0
    batch: list[str] = []

    def flush() -> int:
        ids = {prefix.split("/", 1)[1]: prefix for prefix in batch}
        gone = db.scalars(select(Recording.id).where(Recording.id.in_(ids), Recording.state == RecordingState.DELETED))
        count = p.store.delete_prefixes([ids[rid] for rid in gone])
        batch.clear()
        return count

    for prefix in p.store.prefixes():
        batch.append(prefix)
        if len(batch) >= ORPHAN_BATCH:
            removed += flush()
    return removed + (flush() if batch else 0)
