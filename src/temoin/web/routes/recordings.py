"""Recordings as staff see them: search, metadata, consultation with a motive, content, holds, tags."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.law.access import Motive, MotiveCode, Permission
from temoin.platform import Platform
from temoin.vault import catalogue, holds
from temoin.vault.integrity import (
    LostSegment,
    integrity_of,
    lost_indexes,
    lost_segments,
    stored_segments,
    verify_stored,
)
from temoin.vault.limitation import active_limitations
from temoin.vault.models import Hold, Recording, RecordingNote
from temoin.vault.tracks import Track, parse_area
from temoin.web.byte_ranges import byte_range, ranged_response
from temoin.web.deps import Principal, before_streaming, get_db, get_platform, require

router = APIRouter(prefix="/api/v1/recordings", tags=["recordings"])


class RecordingOut(BaseModel):
    id: str
    camera_id: str
    agent: str
    started_at: datetime
    ended_at: datetime
    trigger: str
    persons_informed: bool
    not_informed_reason: str | None
    outside_territory: bool
    clock_drift: bool
    categories: list[str]
    segment_count: int
    size_bytes: int
    stored_at: datetime | None
    retention_until: datetime
    on_hold: bool
    flags: list[str] = Field(default_factory=list, description="what the vault's checks found at ingest")
    declared_started_at: datetime | None = Field(None, description="the camera's own time, before the correction")
    declared_agent: str | None = Field(None, description="the agent the camera declared (signed manifest)")
    limited: bool = Field(False, description="frozen by a limitation request: kept, not consulted (one recording)")
    rectifications: list[dict] = Field(
        default_factory=list, description="notes of rectification requests (one recording)"
    )
    lost_segments: list[int] = Field(
        default_factory=list, description="segments lost at the camera before hand-over: never in the vault"
    )

    @classmethod
    def of(cls, rec: Recording, on_hold: bool, lost: list[int] | None = None) -> RecordingOut:
        return cls(
            id=rec.id,
            camera_id=rec.device_id,
            agent=rec.agent_ref,
            started_at=rec.started_at,
            ended_at=rec.ended_at,
            trigger=rec.trigger,
            persons_informed=rec.persons_informed,
            not_informed_reason=rec.not_informed_reason,
            outside_territory=rec.outside_territory,
            clock_drift=rec.clock_drift_flag,
            categories=list(rec.categories or []),
            segment_count=rec.segment_count,
            size_bytes=rec.size_bytes,
            stored_at=rec.stored_at,
            retention_until=rec.retention_until,
            on_hold=on_hold,
            flags=list(rec.flags or []),
            declared_started_at=rec.declared_started_at,
            declared_agent=rec.declared_agent_ref,
            lost_segments=lost if lost is not None else [x.index for x in lost_segments(rec)],
        )


class ConsultationIn(BaseModel):
    motive: Motive


class LostOut(BaseModel):
    index: int
    started_at: datetime
    ended_at: datetime
    offset_s: float = Field(description="seconds from the recording's start")
    duration_s: float

    @classmethod
    def of(cls, lost: LostSegment) -> LostOut:
        return cls(
            index=lost.index,
            started_at=lost.started_at,
            ended_at=lost.ended_at,
            offset_s=round(lost.offset_s, 3),
            duration_s=lost.duration_s,
        )


class ConsultationOut(BaseModel):
    grant: str = Field(description="pass as ?grant= to the content URLs; valid 30 minutes")
    segments: list[str] = Field(description="the stored segments' URLs, in order (lost ones are left out)")
    lost_segments: list[LostOut] = Field(
        default_factory=list, description="segments lost at the camera: a gap in the playback"
    )


class HoldIn(BaseModel):
    procedure: holds.ProcedureType
    reference: str = Field(min_length=3, max_length=200)


class LiftIn(BaseModel):
    reason: str = Field(min_length=3, max_length=1000)
    hold_id: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="which hold, when several procedures keep the recording"
    )


class CategoriesIn(BaseModel):
    categories: list[str] = Field(max_length=20)


def _held(db: Session, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    return set(db.scalars(select(Hold.recording_id).where(Hold.recording_id.in_(ids), Hold.lifted_at.is_(None))))


def _visible(p: Platform, db: Session, who: Principal, recording_id: str) -> Recording:
    return catalogue.get_visible(p, db, who.user, recording_id)


def as_utc(moment: datetime | None) -> datetime | None:
    """API times without a zone are read as UTC (the pages send Europe/Paris times with their offset)."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@router.get("", response_model=list[RecordingOut], summary="Search recordings (metadata only)")
def search(
    start: datetime | None = Query(None, description="recordings still running at or after this time"),
    end: datetime | None = Query(None, description="recordings started before this time"),
    agent: str | None = None,
    camera: str | None = None,
    trigger: str | None = None,
    category: str | None = None,
    state: Literal["on_hold", "not_on_hold", "expiring"] | None = Query(
        None, description="on_hold; not_on_hold; expiring: not on hold, deleted within 7 days"
    ),
    area: str | None = Query(
        None,
        max_length=8000,
        description="polygon 'lat,lon;lat,lon;...': the GPS track passes inside "
        "(needs a motive: the place is recorded data, R241-10)",
    ),
    motive_code: MotiveCode | None = Query(None, description="motive of a search by area (journaled)"),
    motive_text: str | None = Query(None, max_length=1000, description="the motive's few words"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    who: Principal = require(Permission.RECORDINGS_LIST),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> list[RecordingOut]:
    try:
        polygon = parse_area(area)
        motive = Motive(code=motive_code, text=motive_text or "") if motive_code or motive_text else None
    except ValueError as exc:  # pydantic's ValidationError too
        raise HTTPException(422, str(exc)) from None
    found = catalogue.search(
        p,
        db,
        who.user,
        catalogue.SearchQuery(
            start=as_utc(start),
            end=as_utc(end),
            agent=agent,
            camera=camera,
            trigger=trigger,
            category=category,
            state=state,
            area=polygon,
            limit=limit,
            offset=offset,
            motive=motive,
        ),
    )
    held = _held(db, [r.id for r in found])
    lost = lost_indexes(db, [r.id for r in found])  # one query, not one per recording
    return [RecordingOut.of(r, r.id in held, lost.get(r.id, [])) for r in found]


class BulkHoldIn(BaseModel):
    recording_ids: list[str] = Field(min_length=1, max_length=500)
    procedure: holds.ProcedureType
    reference: str = Field(min_length=3, max_length=200)


@router.post("/holds", status_code=201, summary="Put several recordings (an incident) on hold, all or nothing")
def place_holds(
    body: BulkHoldIn,
    who: Principal = require(Permission.RECORDINGS_HOLD),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    recs = [_visible(p, db, who, rid) for rid in body.recording_ids]  # one unknown id: 404, nothing held
    made = holds.place_holds(p, db, who.user, recs, body.procedure, body.reference)
    return {
        "recording_ids": [h.recording_id for h in made],
        "procedure": body.procedure.value,
        "reference": made[0].reference,
    }


class FixOut(BaseModel):
    t: datetime
    lat: float
    lon: float


def _fixes(found: Track) -> list[FixOut]:
    return [
        FixOut(t=datetime.fromtimestamp(t, UTC), lat=lat, lon=lon) for t, (lat, lon) in zip(found.times, found.points)
    ]


@router.post(
    "/{recording_id}/track",
    response_model=list[FixOut],
    summary="The GPS track of a recording: give the motive (journaled, the place is recorded data)",
)
def track(
    recording_id: str,
    body: ConsultationIn,
    who: Principal = require(Permission.RECORDINGS_LIST),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> list[FixOut]:
    return _fixes(catalogue.consult_track(p, db, who.user, recording_id, body.motive))


@router.get(
    "/{recording_id}/track",
    response_model=list[FixOut],
    summary="The GPS track under an open consultation (?grant=); without one, POST it with a motive",
)
def track_with_grant(
    recording_id: str,
    grant: str | None = None,
    who: Principal = require(Permission.RECORDINGS_VIEW),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> list[FixOut]:
    rec = _visible(p, db, who, recording_id)
    if not grant:
        raise HTTPException(403, str(catalogue.PlaceMotiveRequired("the GPS track")))
    return _fixes(catalogue.track_under_grant(db, who.user, rec, grant))


class CheckOut(BaseModel):
    at: datetime
    ok: bool
    problems: list[str]
    by: str
    lost_segments: list[int] = Field(default_factory=list, description="not re-read: never in the vault")


class IntegrityOut(BaseModel):
    stored_at: datetime | None = Field(description="verified on receipt: device signature, chain, segment hashes")
    signature_ok: bool
    chain_ok: bool
    checked_at: datetime
    last_full_check: CheckOut | None
    verdict: Literal["intact", "intact_except_lost", "damaged"]
    summary: str
    lost_segments: list[LostOut] = Field(
        default_factory=list, description="declared lost by the camera in the signed receipt"
    )


@router.get("/{recording_id}/integrity", response_model=IntegrityOut, summary="What is known of its integrity")
def integrity(
    recording_id: str,
    who: Principal = require(Permission.RECORDINGS_LIST),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> IntegrityOut:
    found = integrity_of(p, db, _visible(p, db, who, recording_id))
    check = found.last_full_check
    return IntegrityOut(
        stored_at=found.stored_at,
        signature_ok=found.signature_ok,
        chain_ok=found.chain_ok,
        checked_at=found.checked_at,
        last_full_check=CheckOut(**check.__dict__) if check else None,
        verdict=found.verdict,
        summary=found.summary,
        lost_segments=[LostOut.of(x) for x in found.lost],
    )


@router.post(
    "/{recording_id}/integrity",
    response_model=CheckOut,
    summary="Re-read and re-hash the stored copy now (journaled; no content is shown)",
)
def verify_now(
    recording_id: str,
    who: Principal = require(Permission.RECORDINGS_LIST),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> CheckOut:
    check = verify_stored(p, db, who.user, _visible(p, db, who, recording_id))
    return CheckOut(**check.__dict__)


@router.get("/{recording_id}", response_model=RecordingOut, summary="One recording's metadata")
def get_one(
    recording_id: str,
    who: Principal = require(Permission.RECORDINGS_LIST),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> RecordingOut:
    rec = _visible(p, db, who, recording_id)
    out = RecordingOut.of(rec, bool(_held(db, [rec.id])))
    out.limited = bool(active_limitations(db, [rec.id]))
    out.rectifications = [
        {"text": n.text, "rights_request": n.request_id, "written_at": n.written_at}
        for n in db.scalars(
            select(RecordingNote)
            .where(RecordingNote.recording_id == rec.id)
            .order_by(RecordingNote.written_at, RecordingNote.id)
        )
    ]
    return out


@router.post(
    "/{recording_id}/consultations",
    response_model=ConsultationOut,
    status_code=201,
    summary="Open a consultation: give the motive, get a grant for the content",
)
def consult(
    recording_id: str,
    body: ConsultationIn,
    who: Principal = require(Permission.RECORDINGS_VIEW),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> ConsultationOut:
    grant = catalogue.open_consultation(p, db, who.user, recording_id, body.motive)
    rec = db.get_one(Recording, recording_id)  # open_consultation found it
    return ConsultationOut(
        grant=grant,
        segments=[f"/api/v1/recordings/{recording_id}/segments/{s.index}?grant={grant}" for s in stored_segments(rec)],
        lost_segments=[LostOut.of(x) for x in lost_segments(rec)],
    )


@router.get(
    "/{recording_id}/segments/{index}",
    summary="A segment's original bytes (needs a grant)",
    response_class=StreamingResponse,
)
def segment(
    recording_id: str,
    index: int,
    grant: str,
    request: Request,
    play: bool = False,
    who: Principal = require(Permission.RECORDINGS_VIEW),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> StreamingResponse:
    from temoin.axis.vault import playback

    rec = _visible(p, db, who, recording_id)
    catalogue.grant_for(db, who.user, recording_id, grant)
    chunks = catalogue.read_segment(p, db, rec, index)
    # play=1: a clip an Axis camera encrypted for the vault is decrypted for the player (the original stays).
    plain = playback(p, db, rec, index, chunks) if play else None
    if plain is not None:
        before_streaming(db)
        return StreamingResponse(plain, media_type="video/mp4", headers={"Cache-Control": "no-store"})
    size = next(s.size for s in rec.segments if s.index == index)
    # Byte ranges let a paused player seek inside the segment (the review timeline); each request is checked
    # against the grant above, and the consultation was journaled once, when it was opened.
    wanted = byte_range(request.headers.get("range"), size)
    before_streaming(db)
    return ranged_response(
        _slice(chunks, wanted) if wanted else chunks, size, wanted, "video/mp4", {"Cache-Control": "no-store"}
    )


def _slice(chunks: Iterator[bytes], wanted: tuple[int, int]) -> Iterator[bytes]:
    """The bytes [start, end) of a stream (a segment is decrypted from its start: the records before are read
    and dropped)."""
    start, end = wanted
    at = 0
    for chunk in chunks:
        lo, hi = max(start - at, 0), min(end - at, len(chunk))
        if lo < hi:
            yield chunk[lo:hi]
        at += len(chunk)
        if at >= end:
            return


@router.post("/{recording_id}/holds", status_code=201, summary="Put a recording on hold for a procedure")
def place_hold(
    recording_id: str,
    body: HoldIn,
    who: Principal = require(Permission.RECORDINGS_HOLD),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    rec = _visible(p, db, who, recording_id)
    hold = holds.place_hold(p, db, who.user, rec, body.procedure, body.reference)
    return {"recording_id": rec.id, "procedure": hold.procedure_type, "reference": hold.reference}


@router.post("/{recording_id}/holds/lift", summary="Lift the hold: the retention rule applies again")
def lift_hold(
    recording_id: str,
    body: LiftIn,
    who: Principal = require(Permission.RECORDINGS_HOLD),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    rec = _visible(p, db, who, recording_id)
    holds.lift_hold(p, db, who.user, rec, body.reason, body.hold_id)
    return {"recording_id": rec.id, "retention_until": rec.retention_until}


@router.put("/{recording_id}/categories", response_model=RecordingOut, summary="Tag a recording")
def set_categories(
    recording_id: str,
    body: CategoriesIn,
    who: Principal = require(Permission.RECORDINGS_TAG),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> RecordingOut:
    rec = _visible(p, db, who, recording_id)
    before = list(rec.categories or [])
    rec.categories = sorted({c.strip()[:64] for c in body.categories if c.strip()})
    p.record(
        db,
        EntryDraft(
            action=Action.MODIFICATION,
            event="recording.tagged",
            actor=actor_of(who.user),
            recordings=[rec.id],
            cameras=[rec.device_id],
            details={"before": before, "after": rec.categories},
        ),
        who.tenant,
    )
    db.commit()
    return RecordingOut.of(rec, bool(_held(db, [rec.id])))
