"""The catalogue as a user sees it: only their tenant, only stored recordings, only their own for
a wearing agent. Every content access goes through a grant opened with a motive.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session, defer

from temoin import errors
from temoin.db import utcnow
from temoin.evidence import crypto
from temoin.identity.models import Tenant, User
from temoin.identity.secrets import token_hash
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.law.access import (
    OWN_RECORDINGS_ONLY,
    REDACTED_ONLY_MOTIVES,
    Motive,
    MotiveCode,
    Permission,
    Role,
    allows,
    motives_for,
    place_motives_for,
)
from temoin.vault.context import VaultContext
from temoin.vault.limitation import RecordingLimited, active_limitations
from temoin.vault.models import AccessGrant, Hold, Recording, RecordingState, Segment
from temoin.vault.storage import blob_key
from temoin.vault.tracks import LatLon, Track, tracks_of

GRANT_MINUTES = 30


class NotFound(errors.NotFound, LookupError):
    pass


class SegmentLost(NotFound):
    """The camera declared this segment damaged before hand-over: the vault never held its bytes."""


class Forbidden(errors.Forbidden, PermissionError):
    pass


class RedactedOnly(Forbidden):
    """The motive allows anonymised renditions only (training, R241-13): the original is not shown."""

    def __init__(self, recording_id: str, motive: str) -> None:
        super().__init__(
            f"{recording_id}: under the motive {motive!r} only an anonymised rendition may be shown (recordings used "
            "for training are anonymised, image and sound: CSI R241-13), and the player shows originals only. "
            "Make a training extraction instead (recipient: trainer): its package holds the recording with faces "
            "and voices anonymised. To see the original, give the motive that is the real reason for it."
        )


class Limited(Forbidden):
    """Frozen by a person's limitation request (vault.limitation): kept, not consulted."""


class PlaceMotiveRequired(errors.InvalidInput, Forbidden):
    """Where a recording was made is recorded data (R241-10): seeing it needs a motive, journaled."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} shows where recordings were made, which is recorded data (CSI R241-10): give the "
            "motive (code and a few words), as for a consultation; it is written to the journal"
        )


class HoldState:
    """The `state` filter of a search: what a reviewer asks about a recording's future."""

    ON_HOLD = "on_hold"  # kept for a procedure
    NOT_ON_HOLD = "not_on_hold"  # under its retention rule
    EXPIRING = "expiring"  # not on hold and deleted within EXPIRING_DAYS
    ALL = (ON_HOLD, NOT_ON_HOLD, EXPIRING)


EXPIRING_DAYS = 7


@dataclass(frozen=True)
class SearchQuery:
    start: datetime | None = None
    end: datetime | None = None
    agent: str | None = None
    camera: str | None = None
    trigger: str | None = None
    limit: int = 100
    offset: int = 0
    category: str | None = None
    state: str | None = None
    # A polygon (lat, lon) drawn on the map: recordings whose GPS track passes inside it.
    area: tuple[LatLon, ...] | None = None
    # Needed for an area search, and to be shown where the recordings found were made: journaled with them.
    motive: Motive | None = None


def visible(user: User) -> Select:
    """Recordings this user may know of: own tenant, stored, own recordings for a wearing agent, own communes
    for a user scoped to some communes of an EPCI."""
    stmt = select(Recording).where(Recording.tenant_id == user.tenant_id, Recording.state == RecordingState.STORED)
    if Role(user.role) in OWN_RECORDINGS_ONLY:
        stmt = stmt.where(Recording.agent_ref == (user.agent_number or f"user:{user.id}"))
    if user.communes is not None:  # a user of some communes of an EPCI: theirs only (none known: not theirs)
        stmt = stmt.where(Recording.commune.in_(user.communes))
    return stmt


def in_communes(user: User, rec: Recording) -> bool:
    """Whether a recording is of a commune the user may know of (the `visible` rule, for a loaded row)."""
    return user.communes is None or rec.commune in user.communes


def _held():
    return exists().where(Hold.recording_id == Recording.id, Hold.lifted_at.is_(None))


SCAN_BATCH = 500


def check_place_motive(user: User, motive: Motive | None, what: str) -> Motive:
    if motive is None:
        raise PlaceMotiveRequired(what)
    role = Role(user.role)
    allowed = place_motives_for(role)
    if motive.code not in allowed:
        names = ", ".join(sorted(m.value for m in allowed)) or "none: your role does not see places"
        raise Forbidden(f"motive {motive.code.value!r} is not open to your role for places; allowed: {names}")
    return motive


def search(p: VaultContext, db: Session, user: User, q: SearchQuery) -> list[Recording]:
    """Newest first. Time, agent, camera, trigger and hold state narrow in SQL (indexed); category and
    area then filter in Python, the area through each track's cached bounding box first.

    With a motive (required with an area) the search is a consultation of the places of what it found: journaled
    with the recordings, and the caller may show their tracks."""
    if q.area or q.motive is not None:
        check_place_motive(user, q.motive, "a search by area")
    found = _search(db, user, q)
    if q.motive is not None:
        p.record(
            db,
            EntryDraft(
                action=Action.CONSULTATION,
                event="recordings.places_consulted",
                actor=actor_of(user),
                recordings=[r.id for r in found],
                cameras=sorted({r.device_id for r in found}),
                motive={"code": q.motive.code.value, "text": q.motive.text},
                details={"area": [list(c) for c in q.area] if q.area else None, "found": len(found)},
            ),
            db.get_one(Tenant, user.tenant_id),
        )
        db.commit()
    return found


def _search(db: Session, user: User, q: SearchQuery) -> list[Recording]:
    stmt = visible(user).options(defer(Recording.manifest))  # the manifest is read only for cache misses
    if q.start:
        stmt = stmt.where(Recording.ended_at >= q.start)  # overlaps the range
    if q.end:
        stmt = stmt.where(Recording.started_at < q.end)
    if q.agent:
        stmt = stmt.where(Recording.agent_ref == q.agent)
    if q.camera:
        stmt = stmt.where(Recording.device_id == q.camera)
    if q.trigger:
        stmt = stmt.where(Recording.trigger == q.trigger)
    if q.state == HoldState.ON_HOLD:
        stmt = stmt.where(_held())
    elif q.state == HoldState.NOT_ON_HOLD:
        stmt = stmt.where(~_held())
    elif q.state == HoldState.EXPIRING:
        stmt = stmt.where(~_held(), Recording.retention_until <= utcnow() + timedelta(days=EXPIRING_DAYS))
    stmt = stmt.order_by(Recording.started_at.desc(), Recording.id)
    limit = max(0, min(q.limit, 1000))
    if not q.category and not q.area:
        return list(db.scalars(stmt.limit(limit).offset(q.offset)))
    found: list[Recording] = []
    skipped, position = 0, 0
    while len(found) < limit:
        rows = list(db.scalars(stmt.limit(SCAN_BATCH).offset(position)))
        position, last = position + len(rows), len(rows) < SCAN_BATCH
        if q.category:
            rows = [r for r in rows if q.category in (r.categories or [])]
        if q.area:
            tracks = tracks_of(db, rows)
            rows = [r for r in rows if tracks[r.id].passes_through(q.area)]
        for rec in rows:
            if skipped < q.offset:
                skipped += 1
            elif len(found) < limit:
                found.append(rec)
        if last:
            break
    return found


def get_visible(p: VaultContext, db: Session, user: User, recording_id: str) -> Recording:
    """A recording the user may know of, or NotFound. Asking for another tenant's is journaled."""
    rec = db.scalar(visible(user).where(Recording.id == recording_id))
    if rec is None:
        other = db.get(Recording, recording_id)
        tenant = db.get_one(Tenant, user.tenant_id)
        if other is not None and other.tenant_id != user.tenant_id:
            p.record(
                db,
                EntryDraft(
                    action=Action.SECURITY,
                    event="access.cross_tenant",
                    actor=actor_of(user),
                    details={"asked_for": recording_id},
                ),
                tenant,
            )
            db.commit()
        raise NotFound(f"no recording {recording_id} that you may see")
    return rec


def open_consultation(p: VaultContext, db: Session, user: User, recording_id: str, motive: Motive) -> str:
    """Check the right and the motive, journal the consultation, and return a grant token."""
    role = Role(user.role)
    if not allows(role, Permission.RECORDINGS_VIEW):
        raise Forbidden("your role does not give access to recordings' content (R241-12)")
    rec = get_visible(p, db, user, recording_id)
    if motive.code not in motives_for(role):
        allowed = ", ".join(sorted(m.value for m in motives_for(role)))
        raise Forbidden(f"motive {motive.code.value!r} is not open to your role; allowed: {allowed}")
    limits = active_limitations(db, [rec.id])
    if limits:
        p.record(
            db,
            EntryDraft(
                action=Action.SECURITY,
                event="consultation.refused",
                actor=actor_of(user),
                recordings=[rec.id],
                cameras=[rec.device_id],
                motive={"code": motive.code.value, "text": motive.text},
                details={"reason": "limited", "rights_request": limits[0].request_id},
            ),
            db.get_one(Tenant, user.tenant_id),
        )
        db.commit()
        raise Limited(str(RecordingLimited(limits, "consulting it")))
    if motive.code in REDACTED_ONLY_MOTIVES:
        p.record(
            db,
            EntryDraft(
                action=Action.SECURITY,
                event="consultation.refused",
                actor=actor_of(user),
                recordings=[rec.id],
                cameras=[rec.device_id],
                motive={"code": motive.code.value, "text": motive.text},
                details={"reason": "redacted_only"},
            ),
            db.get_one(Tenant, user.tenant_id),
        )
        db.commit()
        raise RedactedOnly(rec.id, motive.code.value)
    token = secrets.token_urlsafe(24)
    db.add(
        AccessGrant(
            token_hash=token_hash(token),
            tenant_id=user.tenant_id,
            user_id=user.id,
            recording_id=rec.id,
            motive_code=motive.code.value,
            motive_text=motive.text,
            expires_at=utcnow() + timedelta(minutes=GRANT_MINUTES),
        )
    )
    p.record(
        db,
        EntryDraft(
            action=Action.CONSULTATION,
            event="recording.consulted",
            actor=actor_of(user),
            recordings=[rec.id],
            cameras=[rec.device_id],
            motive={"code": motive.code.value, "text": motive.text},
        ),
        db.get_one(Tenant, user.tenant_id),
    )
    db.commit()
    return token


def consult_track(p: VaultContext, db: Session, user: User, recording_id: str, motive: Motive | None) -> Track:
    """Where one recording was made (its GPS track), for a motive: journaled as a consultation of its place."""
    rec = get_visible(p, db, user, recording_id)
    motive = check_place_motive(user, motive, "the GPS track")
    limits = active_limitations(db, [rec.id])
    if limits:
        raise Limited(str(RecordingLimited(limits, "consulting its place")))
    p.record(
        db,
        EntryDraft(
            action=Action.CONSULTATION,
            event="recording.place_consulted",
            actor=actor_of(user),
            recordings=[rec.id],
            cameras=[rec.device_id],
            motive={"code": motive.code.value, "text": motive.text},
        ),
        db.get_one(Tenant, user.tenant_id),
    )
    db.commit()
    return tracks_of(db, [rec])[rec.id]


def track_under_grant(db: Session, user: User, rec: Recording, token: str) -> Track:
    """The track shown with the content: the consultation opened with its motive (journaled) covers the place."""
    grant_for(db, user, rec.id, token)
    return tracks_of(db, [rec])[rec.id]


def grant_for(db: Session, user: User, recording_id: str, token: str) -> AccessGrant:
    grant = db.get(AccessGrant, token_hash(token))
    if grant is None or grant.user_id != user.id or grant.recording_id != recording_id or grant.expires_at <= utcnow():
        raise Forbidden("no open consultation for this recording: give a motive first")
    if MotiveCode(grant.motive_code) in REDACTED_ONLY_MOTIVES:  # a grant written before the rule: no original
        raise RedactedOnly(recording_id, grant.motive_code)
    limits = active_limitations(db, [recording_id])
    if limits:  # frozen after the consultation was opened
        raise Limited(str(RecordingLimited(limits, "consulting it")))
    return grant


def read_segment(p: VaultContext, db: Session, rec: Recording, index: int) -> Iterator[bytes]:
    """The original bytes of one segment, decrypted as they are streamed."""
    if not 0 <= index < rec.segment_count:
        raise NotFound(f"{rec.id} has no segment {index}")
    if rec.wrapped_key is None:
        raise NotFound(f"{rec.id} was deleted")
    if not db.get_one(Segment, (rec.id, index)).complete:
        raise SegmentLost(
            f"segment {index} of {rec.id} was lost on the camera before hand-over: the vault never "
            "held it (the other segments play)"
        )
    tenant = db.get_one(Tenant, rec.tenant_id)
    data_key = crypto.unwrap_key(p.keyring.master_key, rec.wrapped_key, rec.id)
    key = blob_key(tenant.slug, rec.id, index)

    def stream() -> Iterator[bytes]:
        with p.store.open(key) as fh:
            yield from crypto.open_records(fh, data_key)

    return stream()
