"""The catalogue as a user sees it: only their tenant, only stored recordings, only their own for
a wearing agent. Every content access goes through a grant opened with a motive.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session, defer

from temoin import errors
from temoin.db import utcnow
from temoin.evidence import crypto
from temoin.evidence.manifest import SignedReceipt
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
from temoin.vault.receipts import declared_lost
from temoin.vault.scrub import check_recording
from temoin.vault.storage import blob_key

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


LatLon = tuple[float, float]


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
            db.get(Tenant, user.tenant_id),
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


def parse_area(text: str | None) -> tuple[LatLon, ...] | None:
    """'lat,lon;lat,lon;lat,lon[;...]': a polygon of at least three corners (a rectangle: its four)."""
    if not text:
        return None
    try:
        points = tuple((float(a), float(b)) for a, b in (pair.split(",") for pair in text.strip().split(";")))
    except ValueError:
        raise ValueError("area: write lat,lon pairs separated by ';' (e.g. 43.55,4.07;43.56,4.07;43.56,4.08)") from None
    if not 3 <= len(points) <= 200:
        raise ValueError("area: a polygon needs 3 to 200 corners")
    if not all(-90 <= lat <= 90 and -180 <= lon <= 180 for lat, lon in points):
        raise ValueError("area: a latitude is within ±90 and a longitude within ±180")
    return points


# --- GPS tracks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """A recording's GPS fixes, from its signed manifest: times (epoch seconds) and (lat, lon)."""

    times: tuple[float, ...] = ()
    points: tuple[LatLon, ...] = ()
    bbox: tuple[float, float, float, float] | None = field(default=None)  # south, west, north, east

    @classmethod
    def of(cls, fixes: Iterable[dict]) -> Track:
        times, points = [], []
        for fix in fixes:
            times.append(datetime.fromisoformat(fix["t"]).timestamp())
            points.append((float(fix["lat"]), float(fix["lon"])))
        if not points:
            return cls()
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        return cls(tuple(times), tuple(points), (min(lats), min(lons), max(lats), max(lons)))

    def passes_through(self, area: Sequence[LatLon]) -> bool:
        """True if a fix lies inside the polygon, or the straight line between two fixes crosses it."""
        if not self.points or len(area) < 3:
            return False
        s, w, n, e = self.bbox  # type: ignore[misc]
        lats, lons = [p[0] for p in area], [p[1] for p in area]
        if s > max(lats) or n < min(lats) or w > max(lons) or e < min(lons):
            return False  # the cheap pre-filter: boxes apart
        if any(_inside(p, area) for p in self.points):
            return True
        edges = list(zip(area, [*area[1:], area[0]]))
        return any(_crosses(a, b, c, d) for a, b in zip(self.points, self.points[1:]) for c, d in edges)

    def simplified(self, max_points: int) -> list[LatLon]:
        """At most max_points fixes, first and last kept: enough to draw a track on a map."""
        if len(self.points) <= max_points:
            return list(self.points)
        step = len(self.points) / (max_points - 1)
        return [self.points[int(i * step)] for i in range(max_points - 1)] + [self.points[-1]]


def _inside(p: LatLon, poly: Sequence[LatLon]) -> bool:
    """Ray casting: small areas, so latitude and longitude are treated as plane coordinates."""
    y, x = p
    inside = False
    for (y1, x1), (y2, x2) in zip(poly, [*poly[1:], poly[0]]):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def _orient(a: LatLon, b: LatLon, c: LatLon) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _crosses(a: LatLon, b: LatLon, c: LatLon, d: LatLon) -> bool:
    d1, d2, d3, d4 = _orient(c, d, a), _orient(c, d, b), _orient(a, b, c), _orient(a, b, d)
    return ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4)


# A manifest never changes once stored (its SHA-256 is its identity): its parsed track is cached
# in memory, keyed by recording and manifest digest, so repeated area searches do not re-read it.
_TRACKS: OrderedDict[tuple[str, str], Track] = OrderedDict()
_TRACKS_MAX = 20_000
_TRACKS_LOCK = threading.Lock()


def track_from_manifest(manifest_text: str) -> Track:
    envelope = orjson.loads(manifest_text)
    return Track.of(envelope.get("manifest", {}).get("gps_track") or [])


def tracks_of(db: Session, recs: Sequence[Recording]) -> dict[str, Track]:
    out: dict[str, Track] = {}
    missing: dict[str, str] = {}
    with _TRACKS_LOCK:
        for rec in recs:
            found = _TRACKS.get((rec.id, rec.manifest_sha256))
            if found is None:
                missing[rec.id] = rec.manifest_sha256
            else:
                _TRACKS.move_to_end((rec.id, rec.manifest_sha256))
                out[rec.id] = found
    ids = list(missing)
    for i in range(0, len(ids), SCAN_BATCH):
        rows = db.execute(select(Recording.id, Recording.manifest).where(Recording.id.in_(ids[i : i + SCAN_BATCH])))
        for rid, text in rows:
            out[rid] = track_from_manifest(text)
            with _TRACKS_LOCK:
                _TRACKS[(rid, missing[rid])] = out[rid]
                while len(_TRACKS) > _TRACKS_MAX:
                    _TRACKS.popitem(last=False)
    return out


def get_visible(p: VaultContext, db: Session, user: User, recording_id: str) -> Recording:
    """A recording the user may know of, or NotFound. Asking for another tenant's is journaled."""
    rec = db.scalar(visible(user).where(Recording.id == recording_id))
    if rec is None:
        other = db.get(Recording, recording_id)
        tenant = db.get(Tenant, user.tenant_id)
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
            db.get(Tenant, user.tenant_id),
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
            db.get(Tenant, user.tenant_id),
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
        db.get(Tenant, user.tenant_id),
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
        db.get(Tenant, user.tenant_id),
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


# --- integrity as a reviewer sees it ---------------------------------------------------------------

INTEGRITY_EVENTS = ("vault.corruption", "recording.verified")


@dataclass(frozen=True)
class FullCheck:
    """The last re-read of the stored blobs (a scrub that found problems, or a check asked for)."""

    at: datetime
    ok: bool
    problems: list[str]
    by: str
    lost_segments: list[int] = field(default_factory=list)  # not re-read: never in the vault (not a problem)


@dataclass(frozen=True)
class LostSegment:
    """A segment the camera declared damaged before hand-over (named in the signed receipt): its device-signed
    hash is in the manifest and in the chain, its bytes were never in the vault."""

    index: int
    started_at: datetime
    duration_s: float
    offset_s: float  # seconds from the recording's start

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.duration_s)

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "offset_s": round(self.offset_s, 3),
            "duration_s": self.duration_s,
        }


def lost_segments(rec: Recording) -> list[LostSegment]:
    """The segments of a stored recording that the vault never held (declared lost by the camera)."""
    if rec.state != RecordingState.STORED:
        return []  # while receiving, an incomplete segment is still to come
    return [
        LostSegment(s.index, s.started_at, s.duration_s, (s.started_at - rec.started_at).total_seconds())
        for s in rec.segments
        if not s.complete
    ]


def lost_indexes(db: Session, recording_ids: Sequence[str]) -> dict[str, list[int]]:
    """lost_segments' indexes for many stored recordings at once (a search's results)."""
    out: dict[str, list[int]] = {}
    for i in range(0, len(recording_ids), SCAN_BATCH):
        rows = db.execute(
            select(Segment.recording_id, Segment.index)
            .join(Recording)
            .where(
                Segment.recording_id.in_(recording_ids[i : i + SCAN_BATCH]),
                Segment.complete.is_(False),
                Recording.state == RecordingState.STORED,
            )
            .order_by(Segment.recording_id, Segment.index)
        )
        for rid, index in rows:
            out.setdefault(rid, []).append(index)
    return out


def stored_segments(rec: Recording) -> list[Segment]:
    """The segments whose bytes the vault holds, in order (all of them unless some were lost at the camera)."""
    return [s for s in rec.segments if s.complete]


def lost_phrase(lost: Sequence[LostSegment] | Sequence[int]) -> str:
    indexes = [x.index if isinstance(x, LostSegment) else x for x in lost]
    return (
        f"intact except lost segments {indexes} declared by the camera (damaged there before hand-over, never "
        "in the vault; their device-signed hashes are still in the chain)"
    )


@dataclass(frozen=True)
class Integrity:
    stored_at: datetime | None  # every check passed on receipt: device signature, chain, each segment's hash
    signature_ok: bool  # the stored manifest's device signature, checked again now
    chain_ok: bool  # the catalogued segment hashes chain to the signed head, checked again now
    checked_at: datetime
    last_full_check: FullCheck | None
    lost: list[LostSegment] = field(default_factory=list)
    # Missing from the vault though the signed receipt does not declare them lost (a catalogue altered since).
    undeclared: list[int] = field(default_factory=list)
    # What signature_ok stands for: the camera's signature of its manifest, or (a recording that came through the
    # Axis Body Worn system, whose cameras sign nothing for Témoin) the vault's own record of its hash on arrival.
    proof: str = "device_signature"
    # Declared lost by the receipt, yet not in the camera's own signed declaration kept at ingest (a forged loss).
    not_by_camera: list[int] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """intact; intact_except_lost (segments declared lost by the camera, the rest verified); damaged."""
        if (
            not (self.signature_ok and self.chain_ok)
            or self.undeclared
            or self.not_by_camera
            or (self.last_full_check and not self.last_full_check.ok)
        ):
            return "damaged"
        return "intact_except_lost" if self.lost else "intact"

    @property
    def summary(self) -> str:
        if self.verdict == "damaged":
            failed = [
                f"{what} failed"
                for what, ok in (
                    (
                        "device signature" if self.proof == "device_signature" else "vault's hash record on arrival",
                        self.signature_ok,
                    ),
                    ("segment chain", self.chain_ok),
                    ("last re-read", not self.last_full_check or self.last_full_check.ok),
                )
                if not ok
            ]
            if self.undeclared:
                failed.append(
                    f"segments {self.undeclared} are not in the vault and the signed receipt does not declare them lost"
                )
            if self.not_by_camera:
                failed.append(
                    f"the signed receipt declares segments {self.not_by_camera} lost, but the camera's signed "
                    "declaration does not"
                )
            return f"NOT intact: {'; '.join(failed)}"
        if self.lost:
            return lost_phrase(self.lost)
        if self.proof == "vault_hash_on_arrival":
            return (
                "intact: hashes taken by the vault on arrival (Axis camera: no device signature), segment chain "
                "and every segment verified"
            )
        return "intact: device signature, segment chain and every segment verified"


AXIS_TRIGGER = "axis"  # Recording.trigger of what came through the Axis system (its TriggerOn is kept as metadata)


def is_axis(rec: Recording) -> bool:
    """Came through the Axis Body Worn system (temoin.axis): no device signature, the vault's hash on arrival."""
    return rec.trigger == AXIS_TRIGGER and rec.manifest.startswith('{"axis"')


def vault_proof(p: VaultContext, rec: Recording) -> tuple[bool, str | None]:
    """For an Axis recording, what stands in for the device signature: the manifest document the vault wrote on
    arrival still hashes to the catalogued SHA-256, and the vault's signed receipt (by a platform key) states it.
    Returns (ok, the chain head the document states)."""
    try:
        doc = orjson.loads(rec.manifest)
        receipt = SignedReceipt.model_validate_json(rec.receipt or "")
    except ValueError:
        return False, None
    key = p.keyring.trusted.get(receipt.receipt.platform_key_id)
    ok = (
        hashlib.sha256(rec.manifest.encode()).hexdigest() == rec.manifest_sha256 == receipt.receipt.manifest_sha256
        and receipt.receipt.recording_id == rec.id
        and key is not None
        and receipt.verify(key.public_key)
    )
    return ok, (doc.get("manifest") or {}).get("chain_head")


def integrity_of(p: VaultContext, db: Session, rec: Recording) -> Integrity:
    """What is known of a recording's integrity, and when it was checked. Cheap: no blob is read."""
    from temoin.evidence.chain import chain_links

    if is_axis(rec):  # no device signature: the proof starts at the vault's hash on arrival (docs/axis.md)
        signature_ok, head = vault_proof(p, rec)
    else:
        signature_ok, head = _device_proof(p, db, rec)
    links = chain_links(rec.id, (bytes.fromhex(s.sha256) for s in rec.segments))
    chain_ok = bool(links) and links[-1].hex() == rec.chain_head == head
    lost = lost_segments(rec)
    declared = set(declared_lost(rec))
    return Integrity(
        rec.stored_at,
        signature_ok,
        chain_ok,
        utcnow(),
        last_full_check(db, rec),
        [x for x in lost if x.index in declared],
        [x.index for x in lost if x.index not in declared],
        "vault_hash_on_arrival" if is_axis(rec) else "device_signature",
        [] if is_axis(rec) or not declared else _not_by_camera(db, rec, sorted(declared)),
    )


_INGEST_ENTRY_SLACK = timedelta(hours=1)  # a server clock stepped by NTP meanwhile


def _not_by_camera(db: Session, rec: Recording, declared: list[int]) -> list[int]:
    """The segments the receipt declares lost that the camera's signed `complete` request, kept in the
    `recording.ingested` entry, does not (all of them when that request is there but not the camera's). None
    when no request was kept (a recording stored before it was): the receipt is then the only record."""
    from temoin.evidence.device_requests import camera_declared_lost
    from temoin.identity.devices import keys_of
    from temoin.journal.models import JournalEntry
    from temoin.journal.service import parse_body

    # The entry was written when the vault stored the recording: the (tenant, time) index narrows the search to
    # that hour before the body is matched (a LIKE over the tenant's whole journal otherwise).
    stored = rec.stored_at or rec.received_at
    entry = db.scalar(
        select(JournalEntry).where(
            JournalEntry.tenant_id == rec.tenant_id,
            JournalEntry.at >= rec.received_at - _INGEST_ENTRY_SLACK,
            JournalEntry.at <= stored + _INGEST_ENTRY_SLACK,
            JournalEntry.event == "recording.ingested",
            JournalEntry.body.contains(f'"{rec.id}"', autoescape=True),
        )
    )
    said = ((parse_body(entry.body).get("details") or {}) if entry else {}).get("lost_declaration")
    if said is None:
        return []
    for key in keys_of(db, rec.device_id):  # the camera's key when it handed over: one of its keys
        lost = camera_declared_lost(said, key.public_key, rec.id)
        if not isinstance(lost, str):
            return [i for i in declared if i not in lost]
    return declared


def _device_proof(p: VaultContext, db: Session, rec: Recording) -> tuple[bool, str | None]:
    from temoin.evidence.manifest import SignedManifest
    from temoin.identity.devices import certificate_of, recording_key

    try:
        envelope = SignedManifest.model_validate_json(rec.manifest)
        key = recording_key(db, envelope.manifest)  # the key valid when the camera signed, not today's
        signature_ok = (
            key is not None
            and envelope.manifest.camera_id == rec.device_id
            and certificate_of(p, db, key) is not None
            and envelope.digest() == rec.manifest_sha256
            and envelope.verify(key.public_key)
        )
        head = envelope.manifest.chain_head
    except ValueError:
        signature_ok, head = False, None
    return signature_ok, head


def last_full_check(db: Session, rec: Recording) -> FullCheck | None:
    from temoin.journal.models import JournalEntry
    from temoin.journal.service import parse_body

    entries = db.scalars(
        select(JournalEntry)
        .where(
            JournalEntry.tenant_id == rec.tenant_id,
            JournalEntry.event.in_(INTEGRITY_EVENTS),
            JournalEntry.body.contains(f'"{rec.id}"', autoescape=True),
        )
        .order_by(JournalEntry.at.desc())
        .limit(1)
    )
    for entry in entries:
        body = parse_body(entry.body)
        details = body.get("details") or {}
        problems = [p for p in details.get("problems", []) if str(p).startswith(f"{rec.id} ")]
        ok = bool(details.get("ok")) if entry.event == "recording.verified" else not problems
        return FullCheck(
            entry.at, ok, problems, (body.get("actor") or {}).get("name", "?"), list(details.get("lost_segments") or [])
        )
    return None


def verify_stored(p: VaultContext, db: Session, user: User, rec: Recording) -> FullCheck:
    """Re-read, decrypt and re-hash every stored segment of one recording now; journaled."""

    tenant = db.get_one(Tenant, rec.tenant_id)
    problems, checked = check_recording(p, rec, tenant.slug)
    messages = [str(c) for c in problems]
    lost = [x.index for x in lost_segments(rec)]
    p.record(
        db,
        EntryDraft(
            action=Action.SECURITY,
            event="recording.verified",
            actor=actor_of(user),
            recordings=[rec.id],
            cameras=[rec.device_id],
            details={
                "ok": not problems,
                "problems": messages[:100],
                "bytes": checked,
                "segments": rec.segment_count,
                **({"lost_segments": lost} if lost else {}),
            },
        ),
        tenant,
    )
    db.commit()
    return FullCheck(utcnow(), not problems, messages, user.display_name, lost)
