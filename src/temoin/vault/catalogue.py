"""The catalogue as a user sees it: only their tenant, only stored recordings, only their own for
a wearing agent. Every content access goes through a grant opened with a motive.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.identity.models import Tenant, User
from temoin.identity.secrets import token_hash
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.law.access import OWN_RECORDINGS_ONLY, Motive, Permission, Role, allows, motives_for
from temoin.platform import Platform
from temoin.vault import crypto
from temoin.vault.models import AccessGrant, Recording, RecordingState
from temoin.vault.storage import blob_key

GRANT_MINUTES = 30


class NotFound(LookupError):
    pass


class Forbidden(PermissionError):
    pass


@dataclass(frozen=True)
class SearchQuery:
    start: datetime | None = None
    end: datetime | None = None
    agent: str | None = None
    camera: str | None = None
    trigger: str | None = None
    limit: int = 100
    offset: int = 0


def visible(user: User) -> Select:
    """Recordings this user may know of: own tenant, stored, own recordings for a wearing agent."""
    stmt = select(Recording).where(Recording.tenant_id == user.tenant_id, Recording.state == RecordingState.STORED)
    if Role(user.role) in OWN_RECORDINGS_ONLY:
        stmt = stmt.where(Recording.agent_ref == (user.agent_number or f"user:{user.id}"))
    return stmt


def search(db: Session, user: User, q: SearchQuery) -> list[Recording]:
    stmt = visible(user)
    if q.start:
        stmt = stmt.where(Recording.started_at >= q.start)
    if q.end:
        stmt = stmt.where(Recording.started_at < q.end)
    if q.agent:
        stmt = stmt.where(Recording.agent_ref == q.agent)
    if q.camera:
        stmt = stmt.where(Recording.device_id == q.camera)
    if q.trigger:
        stmt = stmt.where(Recording.trigger == q.trigger)
    stmt = stmt.order_by(Recording.started_at.desc()).limit(min(q.limit, 1000)).offset(q.offset)
    return list(db.scalars(stmt))


def get_visible(p: Platform, db: Session, user: User, recording_id: str) -> Recording:
    """A recording the user may know of, or NotFound. Asking for another tenant's is journaled."""
    rec = db.scalar(visible(user).where(Recording.id == recording_id))
    if rec is None:
        other = db.get(Recording, recording_id)
        tenant = db.get(Tenant, user.tenant_id)
        if other is not None and other.tenant_id != user.tenant_id:
            p.record(db, EntryDraft(action=Action.SECURITY, event="access.cross_tenant", actor=actor_of(user),
                                    details={"asked_for": recording_id}), tenant)
            db.commit()
        raise NotFound(f"no recording {recording_id} that you may see")
    return rec


def open_consultation(p: Platform, db: Session, user: User, recording_id: str, motive: Motive) -> str:
    """Check the right and the motive, journal the consultation, and return a grant token."""
    role = Role(user.role)
    if not allows(role, Permission.RECORDINGS_VIEW):
        raise Forbidden("your role does not give access to recordings' content (R241-12)")
    rec = get_visible(p, db, user, recording_id)
    if motive.code not in motives_for(role):
        allowed = ", ".join(sorted(m.value for m in motives_for(role)))
        raise Forbidden(f"motive {motive.code.value!r} is not open to your role; allowed: {allowed}")
    token = secrets.token_urlsafe(24)
    db.add(AccessGrant(token_hash=token_hash(token), tenant_id=user.tenant_id, user_id=user.id,
                       recording_id=rec.id, motive_code=motive.code.value, motive_text=motive.text,
                       expires_at=utcnow() + timedelta(minutes=GRANT_MINUTES)))
    p.record(db, EntryDraft(action=Action.CONSULTATION, event="recording.consulted", actor=actor_of(user),
                            recordings=[rec.id], cameras=[rec.device_id],
                            motive={"code": motive.code.value, "text": motive.text}),
             db.get(Tenant, user.tenant_id))
    db.commit()
    return token


def grant_for(db: Session, user: User, recording_id: str, token: str) -> AccessGrant:
    grant = db.get(AccessGrant, token_hash(token))
    if (grant is None or grant.user_id != user.id or grant.recording_id != recording_id
            or grant.expires_at <= utcnow()):
        raise Forbidden("no open consultation for this recording: give a motive first")
    return grant


def read_segment(p: Platform, db: Session, rec: Recording, index: int) -> Iterator[bytes]:
    """The original bytes of one segment, decrypted as they are streamed."""
    if not 0 <= index < rec.segment_count:
        raise NotFound(f"{rec.id} has no segment {index}")
    if rec.wrapped_key is None:
        raise NotFound(f"{rec.id} was deleted")
    tenant = db.get(Tenant, rec.tenant_id)
    data_key = crypto.unwrap_key(p.keyring.master_key, rec.wrapped_key, rec.id)
    key = blob_key(tenant.slug, rec.id, index)

    def stream() -> Iterator[bytes]:
        with p.store.open(key) as fh:
            yield from crypto.open_records(fh, data_key)

    return stream()
