"""Citizens' rights requests: the register, candidate recordings, redacted copies, early erasure."""

from __future__ import annotations

from typing import Annotated

from datetime import date, datetime, timedelta

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.law.access import Permission, allows
from temoin.platform import Platform
from temoin.rights import copies as copies_mod
from temoin.rights import register
from temoin.rights.candidates import find_candidates
from temoin.rights import limitation
from temoin.rights import erasure
from temoin.rights.erasure import ErasureRefused, RecordingsNotFound
from temoin.rights.models import ErasureProposal, RedactedCopy, RequestKind, RequestStatus, RightsRequest
from temoin.vault import catalogue
from temoin.vault.models import Recording
from temoin.web.deps import Principal, get_db, get_platform, require
from temoin.web.i18n import gettext, lang_of

# A row id in a path: a positive 64-bit integer (a larger one is a 422, not a database overflow).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]

router = APIRouter(prefix="/api/v1/rights", tags=["rights"])
pages = APIRouter(include_in_schema=False)

FACTS_WINDOW = timedelta(hours=1)  # around the facts' time when the person gives only one


# --- API models ------------------------------------------------------------------------------------------

class RequestIn(BaseModel):
    kind: RequestKind
    person_description: str = Field(min_length=3, max_length=5000,
                                    description="what the person wore, where and when they were")
    contact: str = Field(min_length=3, max_length=1000)
    received_on: date | None = Field(default=None, description="local day of receipt (default: today)")
    facts_start: datetime | None = None
    facts_end: datetime | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    radius_m: float | None = Field(default=None, gt=0, le=50_000)
    agent: str | None = Field(default=None, max_length=128)
    commune: str | None = Field(default=None, max_length=16,
                                description="in an EPCI: the requester's commune (INSEE code) among those served")


class RequestOut(BaseModel):
    id: int
    kind: str
    status: str
    person_description: str
    contact: str
    received_on: date
    deadline: date
    overdue: bool
    facts_start: datetime | None
    facts_end: datetime | None
    lat: float | None
    lon: float | None
    radius_m: float | None
    agent: str | None
    decision: str | None
    reason: str | None
    procedure_reference: str | None
    erased: list[dict]
    closed_at: datetime | None
    commune: str | None = None

    @classmethod
    def of(cls, r: RightsRequest) -> "RequestOut":
        return cls(id=r.id, kind=r.kind, status=r.status, person_description=r.person_description,
                   contact=r.contact, received_on=r.received_on, deadline=r.deadline, overdue=register.is_overdue(r),
                   facts_start=r.facts_start, facts_end=r.facts_end, lat=r.place_lat, lon=r.place_lon,
                   radius_m=r.radius_m, agent=r.agent_ref, decision=r.decision, reason=r.reason,
                   procedure_reference=r.procedure_reference, erased=list(r.erased or []), closed_at=r.closed_at,
                   commune=r.commune)


class StatusIn(BaseModel):
    status: RequestStatus
    decision: str | None = Field(default=None, max_length=5000)
    reason: str | None = Field(default=None, max_length=5000)
    procedure_reference: str | None = Field(default=None, max_length=200)


class CandidateOut(BaseModel):
    recording_id: str
    camera_id: str
    agent: str
    started_at: datetime
    ended_at: datetime
    overlap_s: float
    distance_m: float | None
    hold: dict | None


class CandidatesOut(BaseModel):
    candidates: list[CandidateOut]
    propose_restriction: bool = Field(description="a candidate is kept for a judicial procedure: restrict access "
                                                  "(the person goes through the CNIL)")
    judicial_holds: list[str]


class ErasureIn(BaseModel):
    recording_ids: list[str] = Field(min_length=1, max_length=200)
    justifications: dict[str, str] = Field(
        default_factory=dict, max_length=200,
        description="recording id -> why it shows the person, for each recording the request's candidate search "
                    "does not find")


class ProposalOut(BaseModel):
    id: int
    request_id: int
    recording_ids: list[str]
    justified: list[str]
    state: str
    proposed_at: datetime
    decided_at: datetime | None
    reason: str | None

    @classmethod
    def of(cls, x: ErasureProposal) -> "ProposalOut":
        return cls(id=x.id, request_id=x.request_id, recording_ids=list(x.recording_ids),
                   justified=sorted(x.justifications or {}), state=x.state, proposed_at=x.proposed_at,
                   decided_at=x.decided_at, reason=x.reason)


class DecisionIn(BaseModel):
    approve: bool
    reason: str | None = Field(default=None, max_length=1000)


class CopyIn(BaseModel):
    recording_id: str = Field(min_length=1, max_length=128)


class RegionIn(BaseModel):
    start_frame: int = Field(ge=0)
    end_frame: int = Field(ge=0)
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)


class RedactIn(BaseModel):
    keep_tracks: list[int] = Field(default_factory=list, max_length=100,
                                   description="the requester's face track(s): left visible")
    add_regions: list[RegionIn] = Field(default_factory=list, max_length=500,
                                        description="extra regions to hide (faces the detector missed)")
    remove_regions: list[RegionIn] = Field(default_factory=list, max_length=500,
                                           description="regions left clear: a detection centred in one is not a "
                                                       "face")
    voice: bool = Field(default=True, description="also disguise the voices")


class ReviewIn(BaseModel):
    approve: bool
    reason: str | None = Field(default=None, max_length=2000)


class CopyOut(BaseModel):
    id: int
    request_id: int
    recording_id: str
    state: str
    progress: float
    error: str | None
    tracks: list[dict]
    keep_tracks: list[int]
    add_regions: list[dict]
    remove_regions: list[dict]
    sha256: str | None
    size_bytes: int | None
    produced_at: datetime | None
    reviewed_at: datetime | None
    review_reason: str | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, c: RedactedCopy) -> "CopyOut":
        return cls(id=c.id, request_id=c.request_id, recording_id=c.recording_id, state=c.state, progress=c.progress,
                   error=c.error, tracks=list(c.tracks or []), keep_tracks=list(c.keep_tracks or []),
                   add_regions=list(c.add_regions or []), remove_regions=list(c.remove_regions or []),
                   sha256=c.sha256, size_bytes=c.size_bytes,
                   produced_at=c.produced_at, reviewed_at=c.reviewed_at, review_reason=c.review_reason,
                   delivered_at=c.delivered_at)


# --- helpers --------------------------------------------------------------------------------------------

def _request(p: Platform, db: Session, who: Principal, request_id: int) -> RightsRequest:
    try:
        return register.get_request(p, db, who.user, request_id)
    except register.RequestNotFound as exc:
        raise HTTPException(404, str(exc)) from None


def _copy(p: Platform, db: Session, who: Principal, copy_id: int) -> RedactedCopy:
    try:
        return copies_mod.get_copy(p, db, who.user, copy_id)
    except copies_mod.CopyNotFound as exc:
        raise HTTPException(404, str(exc)) from None


def _window(req: RightsRequest, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    start, end = start or req.facts_start, end or req.facts_end
    if start is None and end is None:
        raise HTTPException(422, "no time for the facts: give start and end (or record them on the request)")
    start, end = start or end - FACTS_WINDOW, end or start + FACTS_WINDOW
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(422, "give times with their offset (e.g. 2026-03-14T18:30:00+01:00)")
    return start, end


def candidates_for(db: Session, who: Principal, req: RightsRequest, start: datetime | None = None, end: datetime | None = None,
                   lat: float | None = None, lon: float | None = None, radius_m: float | None = None,
                   agent: str | None = None) -> CandidatesOut:
    start, end = _window(req, start, end)
    lat = lat if lat is not None else req.place_lat
    lon = lon if lon is not None else req.place_lon
    radius = radius_m if radius_m is not None else req.radius_m
    try:
        found = find_candidates(db, who.user, start, end, lat=lat, lon=lon, radius_m=radius,
                                agent=agent or req.agent_ref)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    judicial = [c.recording_id for c in found if c.hold and c.hold["procedure"] == "judicial"]
    return CandidatesOut(candidates=[CandidateOut(**c.__dict__) for c in found], propose_restriction=bool(judicial),
                         judicial_holds=judicial)


# --- the register ---------------------------------------------------------------------------------------

@router.post("/requests", response_model=RequestOut, status_code=201, summary="Register a person's request")
def create(body: RequestIn, who: Principal = require(Permission.RIGHTS_MANAGE), db: Session = Depends(get_db),
           p: Platform = Depends(get_platform)) -> RequestOut:
    try:
        req = register.create_request(p, db, who.user, who.tenant, register.NewRequest(
            kind=body.kind, person_description=body.person_description, contact=body.contact,
            received_on=body.received_on, facts_start=body.facts_start, facts_end=body.facts_end,
            place_lat=body.lat, place_lon=body.lon, radius_m=body.radius_m, agent_ref=body.agent,
            commune=body.commune))
    except register.RightsError as exc:
        raise HTTPException(422, str(exc)) from None
    return RequestOut.of(req)


@router.get("/requests", response_model=list[RequestOut], summary="The register, nearest deadline first")
def list_all(status: RequestStatus | None = None, overdue: bool | None = None,
             who: Principal = require(Permission.RIGHTS_MANAGE), db: Session = Depends(get_db)) -> list[RequestOut]:
    return [RequestOut.of(r) for r in register.list_requests(db, who.tenant, who.user, status=status, overdue=overdue)]


@router.get("/requests/{request_id}", response_model=RequestOut, summary="One request")
def get_one(request_id: RowId, who: Principal = require(Permission.RIGHTS_MANAGE), db: Session = Depends(get_db),
            p: Platform = Depends(get_platform)) -> RequestOut:
    return RequestOut.of(_request(p, db, who, request_id))


@router.post("/requests/{request_id}/status", response_model=RequestOut,
             summary="Move a request along: in_progress, answered, refused, restricted (indirect route via the CNIL)")
def set_status(request_id: RowId, body: StatusIn, who: Principal = require(Permission.RIGHTS_MANAGE),
               db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> RequestOut:
    req = _request(p, db, who, request_id)
    try:
        register.set_status(p, db, who.user, req, body.status, decision=body.decision, reason=body.reason,
                            procedure_reference=body.procedure_reference)
    except register.RightsError as exc:
        raise HTTPException(409, str(exc)) from None
    return RequestOut.of(req)


@router.get("/requests/{request_id}/candidates", response_model=CandidatesOut,
            summary="Recordings that may show the person (time window, place, agent)")
def candidates(request_id: RowId, start: datetime | None = None, end: datetime | None = None,
               lat: float | None = Query(None, ge=-90, le=90), lon: float | None = Query(None, ge=-180, le=180),
               radius_m: float | None = Query(None, gt=0, le=50_000), agent: str | None = None,
               who: Principal = require(Permission.RIGHTS_MANAGE), db: Session = Depends(get_db),
               p: Platform = Depends(get_platform)) -> CandidatesOut:
    req = _request(p, db, who, request_id)
    return candidates_for(db, who, req, start, end, lat, lon, radius_m, agent)


@router.post("/requests/{request_id}/erasure", response_model=ProposalOut, status_code=201,
             summary="Propose to erase recordings (candidates, or justified one by one); a second person approves")
def propose_erasure(request_id: RowId, body: ErasureIn, who: Principal = require(Permission.RIGHTS_MANAGE),
                    db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> ProposalOut:
    req = _request(p, db, who, request_id)
    proposal = _rights_call(lambda: erasure.propose_erasure(p, db, who.user, req, body.recording_ids,
                                                            body.justifications))
    return ProposalOut.of(proposal)


@router.get("/requests/{request_id}/erasure", response_model=list[ProposalOut],
            summary="The erasure proposals of a request and their decisions")
def list_proposals(request_id: RowId, who: Principal = require(Permission.RIGHTS_MANAGE),
                   db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> list[ProposalOut]:
    return [ProposalOut.of(x) for x in erasure.proposals_of(db, _request(p, db, who, request_id))]


@router.post("/erasure-proposals/{proposal_id}/decision", response_model=RequestOut,
             summary="A second person approves (the recordings are erased now, certificate each) or rejects")
def decide_erasure(proposal_id: RowId, body: DecisionIn, who: Principal = require(Permission.RIGHTS_MANAGE),
                   db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> RequestOut:
    def work() -> RequestOut:
        proposal = erasure.get_proposal(db, who.user, proposal_id)
        erasure.decide_erasure(p, db, who.user, proposal, approve=body.approve, reason=body.reason)
        req = db.get(RightsRequest, proposal.request_id)
        db.refresh(req)
        return RequestOut.of(req)
    return _rights_call(work)


# --- limitation and rectification (rights.limitation) ---------------------------------------------------

class LimitationIn(BaseModel):
    recording_ids: list[str] = Field(min_length=1, max_length=500)


class LiftLimitationIn(BaseModel):
    recording_id: str = Field(max_length=128)
    reason: str = Field(min_length=3, max_length=1000)


class RectificationIn(BaseModel):
    recording_ids: list[str] = Field(min_length=1, max_length=500)
    text: str = Field(min_length=3, max_length=limitation.MAX_NOTE)


def _rights_call(call):  # noqa: ANN001, ANN202
    try:
        return call()
    except (register.RightsError, ErasureRefused) as exc:
        raise HTTPException(409, str(exc)) from None
    except (RecordingsNotFound, erasure.ProposalNotFound) as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/requests/{request_id}/limitations", status_code=201,
             summary="Freeze the named recordings for a limitation request: kept, not consulted, extracted or deleted")
def limit(request_id: RowId, body: LimitationIn, who: Principal = require(Permission.RIGHTS_MANAGE),
          db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> dict:
    req = _request(p, db, who, request_id)
    made = _rights_call(lambda: limitation.limit(p, db, who.user, req, body.recording_ids))
    return {"request_id": req.id, "limited": [m.recording_id for m in made]}


@router.post("/requests/{request_id}/limitations/lift",
             summary="Lift the request's limitation of one recording (journaled with the reason)")
def lift_limitation(request_id: RowId, body: LiftLimitationIn, who: Principal = require(Permission.RIGHTS_MANAGE),
                    db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> dict:
    req = _request(p, db, who, request_id)
    lim = _rights_call(lambda: limitation.lift(p, db, who.user, req, body.recording_id, body.reason))
    return {"request_id": req.id, "recording_id": lim.recording_id, "lifted_at": lim.lifted_at}


@router.post("/requests/{request_id}/rectifications", status_code=201,
             summary="Attach a rectification to the named recordings (the footage is never altered)")
def rectify(request_id: RowId, body: RectificationIn, who: Principal = require(Permission.RIGHTS_MANAGE),
            db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> dict:
    req = _request(p, db, who, request_id)
    made = _rights_call(lambda: limitation.rectify(p, db, who.user, req, body.recording_ids, body.text))
    return {"request_id": req.id, "notes": [{"id": n.id, "recording_id": n.recording_id} for n in made]}


# --- redacted copies ------------------------------------------------------------------------------------

def _engine_or_503() -> None:
    try:
        copies_mod.engine()
    except copies_mod.EngineMissing as exc:
        raise HTTPException(503, str(exc)) from None


@router.post("/requests/{request_id}/copies", response_model=CopyOut, status_code=202,
             summary="Start a redacted copy of a recording: the faces are found in the background")
def start_copy(request_id: RowId, body: CopyIn, who: Principal = require(Permission.RECORDINGS_REDACT),
               db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> CopyOut:
    req = _request(p, db, who, request_id)
    try:
        copy = copies_mod.start_copy(p, db, who.user, req, body.recording_id)
    except copies_mod.CopyNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except register.RightsError as exc:
        raise HTTPException(409, str(exc)) from None
    except copies_mod.EngineMissing as exc:
        raise HTTPException(503, str(exc)) from None
    return CopyOut.of(copy)


@router.get("/requests/{request_id}/copies", response_model=list[CopyOut], summary="The copies of a request")
def list_copies(request_id: RowId, who: Principal = require(Permission.RIGHTS_MANAGE), db: Session = Depends(get_db),
                p: Platform = Depends(get_platform)) -> list[CopyOut]:
    req = _request(p, db, who, request_id)
    return [CopyOut.of(c) for c in db.scalars(select(RedactedCopy).where(RedactedCopy.request_id == req.id)
                                              .order_by(RedactedCopy.id))]


@router.get("/copies/{copy_id}", response_model=CopyOut, summary="A copy's state and progress")
def get_copy(copy_id: RowId, who: Principal = require(Permission.RECORDINGS_REDACT), db: Session = Depends(get_db),
             p: Platform = Depends(get_platform)) -> CopyOut:
    return CopyOut.of(_copy(p, db, who, copy_id))


@router.get("/copies/{copy_id}/faces", summary="The face tracks with a thumbnail each (journaled: shows faces)")
def faces(copy_id: RowId, who: Principal = require(Permission.RECORDINGS_REDACT), db: Session = Depends(get_db),
          p: Platform = Depends(get_platform)) -> list[dict]:
    copy = _copy(p, db, who, copy_id)
    try:
        return copies_mod.faces(p, db, who.user, copy)
    except register.RightsError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/copies/{copy_id}/redact", response_model=CopyOut, status_code=202,
             summary="Produce the copy: the kept tracks stay visible, every other face is blurred")
def redact(copy_id: RowId, body: RedactIn, who: Principal = require(Permission.RECORDINGS_REDACT),
           db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> CopyOut:
    copy = _copy(p, db, who, copy_id)
    try:
        copies_mod.redact(p, db, who.user, copy, keep_tracks=body.keep_tracks,
                          add_regions=[r.model_dump() for r in body.add_regions],
                          remove_regions=[r.model_dump() for r in body.remove_regions], voice=body.voice)
    except register.RightsError as exc:
        raise HTTPException(409, str(exc)) from None
    except copies_mod.EngineMissing as exc:
        raise HTTPException(503, str(exc)) from None
    return CopyOut.of(copy)


@router.get("/copies/{copy_id}/still", summary="A frame of the original, to draw regions over (JPEG; journaled: "
                                               "shows faces)", response_class=Response)
def still(copy_id: RowId, at: float = Query(0.0, ge=0, description="seconds from the recording's start"),
          who: Principal = require(Permission.RECORDINGS_REDACT), db: Session = Depends(get_db),
          p: Platform = Depends(get_platform)) -> Response:
    copy = _copy(p, db, who, copy_id)
    try:
        shown = copies_mod.still(p, db, who.user, copy, at)
    except copies_mod.CopyNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except register.RightsError as exc:
        raise HTTPException(409, str(exc)) from None
    return Response(shown.jpeg, media_type="image/jpeg", headers={
        "Cache-Control": "no-store", "X-Frame-Index": str(shown.frame), "X-Frame-Rate": f"{shown.frame_rate:.6g}",
        "X-Frame-Time": f"{shown.at_s:.3f}"})


@router.get("/copies/{copy_id}/video", summary="Watch the produced copy to review it (journaled)",
            response_class=StreamingResponse)
def review_video(copy_id: RowId, request: Request, who: Principal = require(Permission.RECORDINGS_REDACT),
                 db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> StreamingResponse:
    copy = _copy(p, db, who, copy_id)
    size = copy.size_bytes or 0
    wanted = _byte_range(request.headers.get("range"), size)
    try:
        chunks = copies_mod.copy_stream(p, db, who.user, copy, deliver=False, byte_range=wanted)
    except register.RightsError as exc:
        raise HTTPException(409, str(exc)) from None
    headers = {"Cache-Control": "no-store", "Accept-Ranges": "bytes"}
    if wanted is None:
        return StreamingResponse(chunks, media_type="video/mp4", headers={**headers, "Content-Length": str(size)})
    start, end = wanted
    return StreamingResponse(chunks, status_code=206, media_type="video/mp4", headers={
        **headers, "Content-Range": f"bytes {start}-{end - 1}/{size}", "Content-Length": str(end - start)})


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range as [start, end); None without a header (the whole file);
    416 when it cannot be served. A player seeks with these."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec or "-" not in spec:
        raise HTTPException(416, "ask for one byte range (bytes=START-END)",
                            headers={"Content-Range": f"bytes */{size}"})
    first, _, last = (part.strip() for part in spec.partition("-"))
    try:
        if first == "":
            start, end = max(0, size - int(last)), size
        else:
            start, end = int(first), min(size, int(last) + 1) if last else size
    except ValueError:
        raise HTTPException(416, f"bad byte range {header!r}", headers={"Content-Range": f"bytes */{size}"}) from None
    if start >= size or end <= start:
        raise HTTPException(416, f"the range {header!r} lies outside the copy's {size} bytes",
                            headers={"Content-Range": f"bytes */{size}"})
    return start, end


@router.post("/copies/{copy_id}/review", response_model=CopyOut,
             summary="A person approves the copy for release, or rejects it with a reason")
def review(copy_id: RowId, body: ReviewIn, who: Principal = require(Permission.RECORDINGS_REDACT),
           db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> CopyOut:
    copy = _copy(p, db, who, copy_id)
    try:
        copies_mod.review(p, db, who.user, copy, approve=body.approve, reason=body.reason)
    except register.RightsError as exc:
        raise HTTPException(409, str(exc)) from None
    return CopyOut.of(copy)


@router.get("/copies/{copy_id}/download", summary="The approved copy, for the requester (journaled as a "
                                                  "communication to them)", response_class=StreamingResponse)
def download(copy_id: RowId, who: Principal = require(Permission.RIGHTS_MANAGE), db: Session = Depends(get_db),
             p: Platform = Depends(get_platform)) -> StreamingResponse:
    copy = _copy(p, db, who, copy_id)
    try:
        chunks = copies_mod.copy_stream(p, db, who.user, copy, deliver=True)
    except register.RightsError as exc:
        raise HTTPException(409, str(exc)) from None
    return StreamingResponse(chunks, media_type="video/mp4", headers={
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="copie-demande-{copy.request_id}-{copy.id}.mp4"'})


# --- pages ----------------------------------------------------------------------------------------------

def _page(request: Request, name: str, who: Principal, status: int = 200, **context) -> HTMLResponse:
    from temoin.web.pages import page

    return page(request, name, status=status, who=who, **context)


def _page_guard(permission: Permission):  # noqa: ANN202
    from temoin.web.pages import PageRequire

    return Depends(PageRequire(permission))


def _parse_dt(value: str) -> datetime | None:
    """A datetime-local field (Paris time) or an ISO time with offset."""
    value = value.strip()
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=register.PARIS)


def _float(value: str) -> float | None:
    value = value.strip().replace(",", ".")
    return float(value) if value else None


@pages.get("/rights")
def rights_page(request: Request, who: Principal = _page_guard(Permission.RIGHTS_MANAGE),
                db: Session = Depends(get_db)) -> HTMLResponse:
    from temoin.identity.tenant_settings import settings_of

    return _page(request, "rights.html", who, requests=register.list_requests(db, who.tenant, who.user),
                 is_overdue=register.is_overdue, kinds=[k.value for k in RequestKind],
                 months=settings_of(who.tenant).rights_deadline_months)


@pages.post("/rights")
def rights_create(request: Request, kind: str = Form(""), person_description: str = Form(""),
                  contact: str = Form(""), received_on: str = Form(""), facts_start: str = Form(""),
                  facts_end: str = Form(""), lat: str = Form(""), lon: str = Form(""), radius_m: str = Form(""),
                  agent: str = Form(""), commune: str = Form(""),
                  who: Principal = _page_guard(Permission.RIGHTS_MANAGE),
                  db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> Response:
    from temoin.identity.tenant_settings import settings_of

    try:
        req = register.create_request(p, db, who.user, who.tenant, register.NewRequest(
            kind=RequestKind(kind), person_description=person_description, contact=contact,
            received_on=date.fromisoformat(received_on) if received_on.strip() else None,
            facts_start=_parse_dt(facts_start), facts_end=_parse_dt(facts_end), place_lat=_float(lat),
            place_lon=_float(lon), radius_m=_float(radius_m), agent_ref=agent, commune=commune))
    except (ValueError, register.RightsError) as exc:
        return _page(request, "rights.html", who, status=422, error=str(exc),
                     requests=register.list_requests(db, who.tenant, who.user), is_overdue=register.is_overdue,
                     kinds=[k.value for k in RequestKind], months=settings_of(who.tenant).rights_deadline_months)
    return RedirectResponse(f"/rights/{req.id}", 303)


def _request_page(request: Request, who: Principal, p: Platform, db: Session, request_id: int, status: int = 200,
                  **extra) -> HTMLResponse:
    try:
        req = register.get_request(p, db, who.user, request_id)
    except register.RequestNotFound:
        lang = lang_of(request)
        return _page(request, "error.html", who, status=404, title=gettext(lang, "Not found"),
                     error=gettext(lang, "No request."))
    found, window_error = None, None
    try:
        found = candidates_for(db, who, req)
    except HTTPException as exc:
        window_error = exc.detail
    copies = list(db.scalars(select(RedactedCopy).where(RedactedCopy.request_id == req.id).order_by(RedactedCopy.id)))
    return _page(request, "rights_request.html", who, status=status, req=req, overdue=register.is_overdue(req),
                 found=found, window_error=window_error, copies=copies, proposals=erasure.proposals_of(db, req),
                 next_statuses=[s.value for s in register.TRANSITIONS[RequestStatus(req.status)]],
                 can_redact=allows(who.role, Permission.RECORDINGS_REDACT), **extra)


@pages.get("/rights/{request_id}")
def request_page(request_id: RowId, request: Request, who: Principal = _page_guard(Permission.RIGHTS_MANAGE),
                 db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> HTMLResponse:
    return _request_page(request, who, p, db, request_id)


@pages.post("/rights/{request_id}/status")
def request_status(request_id: RowId, request: Request, status: str = Form(""), decision: str = Form(""),
                   reason: str = Form(""), procedure_reference: str = Form(""),
                   who: Principal = _page_guard(Permission.RIGHTS_MANAGE), db: Session = Depends(get_db),
                   p: Platform = Depends(get_platform)) -> Response:
    try:
        req = register.get_request(p, db, who.user, request_id)
        register.set_status(p, db, who.user, req, RequestStatus(status), decision=decision, reason=reason,
                            procedure_reference=procedure_reference)
    except register.RequestNotFound:
        return _request_page(request, who, p, db, request_id)
    except (ValueError, register.RightsError) as exc:
        return _request_page(request, who, p, db, request_id, status=409, error=str(exc))
    return RedirectResponse(f"/rights/{request_id}", 303)


@pages.post("/rights/{request_id}/erasure")
async def request_erasure(request_id: RowId, request: Request,
                          who: Principal = _page_guard(Permission.RIGHTS_MANAGE), db: Session = Depends(get_db),
                          p: Platform = Depends(get_platform)) -> Response:
    form = await request.form()
    ids = [str(v) for v in form.getlist("recording_id")]
    extra = str(form.get("extra_recording", "")).strip()
    justifications = {extra: str(form.get("justification", ""))} if extra else {}

    def work() -> Response:
        try:
            req = register.get_request(p, db, who.user, request_id)
            erasure.propose_erasure(p, db, who.user, req, [*ids, *([extra] if extra else [])], justifications)
        except register.RequestNotFound:
            return _request_page(request, who, p, db, request_id)
        except (register.RightsError, RecordingsNotFound, ErasureRefused) as exc:
            return _request_page(request, who, p, db, request_id, status=409, error=str(exc))
        return RedirectResponse(f"/rights/{request_id}", 303)

    return await run_in_threadpool(work)


@pages.post("/rights/erasure-proposals/{proposal_id}/decision")
def erasure_decision(proposal_id: int, request: Request, decision: str = Form(""), reason: str = Form(""),
                     who: Principal = _page_guard(Permission.RIGHTS_MANAGE), db: Session = Depends(get_db),
                     p: Platform = Depends(get_platform)) -> Response:
    try:
        proposal = erasure.get_proposal(db, who.user, proposal_id)
    except erasure.ProposalNotFound as exc:
        return _page(request, "error.html", who, status=404, title=gettext(lang_of(request), "Not found"), error=str(exc))
    try:
        erasure.decide_erasure(p, db, who.user, proposal, approve=decision == "approve", reason=reason)
    except (register.RightsError, RecordingsNotFound, ErasureRefused) as exc:
        return _request_page(request, who, p, db, proposal.request_id, status=409, error=str(exc))
    return RedirectResponse(f"/rights/{proposal.request_id}", 303)


@pages.post("/rights/{request_id}/copies")
def request_copy(request_id: RowId, request: Request, recording_id: str = Form(""),
                 who: Principal = _page_guard(Permission.RECORDINGS_REDACT), db: Session = Depends(get_db),
                 p: Platform = Depends(get_platform)) -> Response:
    try:
        req = register.get_request(p, db, who.user, request_id)
        copy = copies_mod.start_copy(p, db, who.user, req, recording_id)
    except (register.RequestNotFound, copies_mod.CopyNotFound, register.RightsError,
            copies_mod.EngineMissing) as exc:
        # Not the request's page: a role that may redact need not be one that reads the register.
        status = 409 if isinstance(exc, register.RightsError | copies_mod.EngineMissing) else 404
        return _page(request, "error.html", who, status=status, title=gettext(lang_of(request), "Error"), error=str(exc))
    return RedirectResponse(f"/rights/copies/{copy.id}", 303)


@pages.get("/rights/copies/{copy_id}")
def copy_page(copy_id: RowId, request: Request, who: Principal = _page_guard(Permission.RECORDINGS_REDACT),
              db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> HTMLResponse:
    try:
        copy = copies_mod.get_copy(p, db, who.user, copy_id)
    except copies_mod.CopyNotFound as exc:
        return _page(request, "error.html", who, status=404, title=gettext(lang_of(request), "Not found"),
                     error=str(exc))
    rec = db.get(Recording, copy.recording_id)
    return _page(request, "rights_copy.html", who, copy=copy, rec=rec,
                 duration_s=round(sum(s.duration_s for s in catalogue.stored_segments(rec)), 3),
                 can_deliver=allows(who.role, Permission.RIGHTS_MANAGE),
                 can_see_request=allows(who.role, Permission.RIGHTS_MANAGE))
