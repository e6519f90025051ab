"""Citizens' rights requests over the API: the register, candidate recordings, early erasure, limitation and
rectification, redacted copies. The rights package's errors are temoin.errors kinds: they propagate to the
app's handler (web.problems), which answers 404, 409, 422 or 503 with the message."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.law.access import Permission
from temoin.platform import Platform
from temoin.rights import copies as copies_mod, erasure, limitation, register
from temoin.rights.candidates import candidates_for_request
from temoin.rights.models import RedactedCopy, RequestStatus, RightsRequest
from temoin.web.byte_ranges import byte_range, ranged_response
from temoin.web.deps import Principal, before_streaming, get_db, get_platform, require
from temoin.web.rights.schemas import (
    CandidatesOut,
    CopyIn,
    CopyOut,
    DecisionIn,
    ErasureIn,
    LiftLimitationIn,
    LimitationIn,
    ProposalOut,
    RectificationIn,
    RedactIn,
    RequestIn,
    RequestOut,
    ReviewIn,
    RowId,
    StatusIn,
)

router = APIRouter(prefix="/api/v1/rights", tags=["rights"])


# --- the register ---------------------------------------------------------------------------------------


@router.post("/requests", response_model=RequestOut, status_code=201, summary="Register a person's request")
def create(
    body: RequestIn,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> RequestOut:
    req = register.create_request(
        p,
        db,
        who.user,
        who.tenant,
        register.NewRequest(
            kind=body.kind,
            person_description=body.person_description,
            contact=body.contact,
            received_on=body.received_on,
            facts_start=body.facts_start,
            facts_end=body.facts_end,
            place_lat=body.lat,
            place_lon=body.lon,
            radius_m=body.radius_m,
            agent_ref=body.agent,
            commune=body.commune,
        ),
    )
    return RequestOut.of(req)


@router.get("/requests", response_model=list[RequestOut], summary="The register, nearest deadline first")
def list_all(
    status: RequestStatus | None = None,
    overdue: bool | None = None,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
) -> list[RequestOut]:
    return [RequestOut.of(r) for r in register.list_requests(db, who.tenant, who.user, status=status, overdue=overdue)]


@router.get("/requests/{request_id}", response_model=RequestOut, summary="One request")
def get_one(
    request_id: RowId,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> RequestOut:
    return RequestOut.of(register.get_request(p, db, who.user, request_id))


@router.post(
    "/requests/{request_id}/status",
    response_model=RequestOut,
    summary="Move a request along: in_progress, answered, refused, restricted (indirect route via the CNIL)",
)
def set_status(
    request_id: RowId,
    body: StatusIn,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> RequestOut:
    req = register.get_request(p, db, who.user, request_id)
    register.set_status(
        p,
        db,
        who.user,
        req,
        body.status,
        decision=body.decision,
        reason=body.reason,
        procedure_reference=body.procedure_reference,
    )
    return RequestOut.of(req)


@router.get(
    "/requests/{request_id}/candidates",
    response_model=CandidatesOut,
    summary="Recordings that may show the person (time window, place, agent)",
)
def candidates(
    request_id: RowId,
    start: datetime | None = None,
    end: datetime | None = None,
    lat: float | None = Query(None, ge=-90, le=90),
    lon: float | None = Query(None, ge=-180, le=180),
    radius_m: float | None = Query(None, gt=0, le=50_000),
    agent: str | None = None,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> CandidatesOut:
    req = register.get_request(p, db, who.user, request_id)
    return CandidatesOut.of(candidates_for_request(db, who.user, req, start, end, lat, lon, radius_m, agent))


@router.post(
    "/requests/{request_id}/erasure",
    response_model=ProposalOut,
    status_code=201,
    summary="Propose to erase recordings (candidates, or justified one by one); a second person approves",
)
def propose_erasure(
    request_id: RowId,
    body: ErasureIn,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> ProposalOut:
    req = register.get_request(p, db, who.user, request_id)
    return ProposalOut.of(erasure.propose_erasure(p, db, who.user, req, body.recording_ids, body.justifications))


@router.get(
    "/requests/{request_id}/erasure",
    response_model=list[ProposalOut],
    summary="The erasure proposals of a request and their decisions",
)
def list_proposals(
    request_id: RowId,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> list[ProposalOut]:
    return [ProposalOut.of(x) for x in erasure.proposals_of(db, register.get_request(p, db, who.user, request_id))]


@router.post(
    "/erasure-proposals/{proposal_id}/decision",
    response_model=RequestOut,
    summary="A second person approves (the recordings are erased now, certificate each) or rejects",
)
def decide_erasure(
    proposal_id: RowId,
    body: DecisionIn,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> RequestOut:
    proposal = erasure.get_proposal(db, who.user, proposal_id)
    erasure.decide_erasure(p, db, who.user, proposal, approve=body.approve, reason=body.reason)
    req = db.get_one(RightsRequest, proposal.request_id)
    db.refresh(req)
    return RequestOut.of(req)


# --- limitation and rectification (rights.limitation) ---------------------------------------------------


@router.post(
    "/requests/{request_id}/limitations",
    status_code=201,
    summary="Freeze the named recordings for a limitation request: kept, not consulted, extracted or deleted",
)
def limit(
    request_id: RowId,
    body: LimitationIn,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    req = register.get_request(p, db, who.user, request_id)
    made = limitation.limit(p, db, who.user, req, body.recording_ids)
    return {"request_id": req.id, "limited": [m.recording_id for m in made]}


@router.post(
    "/requests/{request_id}/limitations/lift",
    summary="Lift the request's limitation of one recording (journaled with the reason)",
)
def lift_limitation(
    request_id: RowId,
    body: LiftLimitationIn,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    req = register.get_request(p, db, who.user, request_id)
    lim = limitation.lift(p, db, who.user, req, body.recording_id, body.reason)
    return {"request_id": req.id, "recording_id": lim.recording_id, "lifted_at": lim.lifted_at}


@router.post(
    "/requests/{request_id}/rectifications",
    status_code=201,
    summary="Attach a rectification to the named recordings (the footage is never altered)",
)
def rectify(
    request_id: RowId,
    body: RectificationIn,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    req = register.get_request(p, db, who.user, request_id)
    made = limitation.rectify(p, db, who.user, req, body.recording_ids, body.text)
    return {"request_id": req.id, "notes": [{"id": n.id, "recording_id": n.recording_id} for n in made]}


# --- redacted copies ------------------------------------------------------------------------------------


@router.post(
    "/requests/{request_id}/copies",
    response_model=CopyOut,
    status_code=202,
    summary="Start a redacted copy of a recording: the faces are found in the background",
)
def start_copy(
    request_id: RowId,
    body: CopyIn,
    who: Principal = require(Permission.RECORDINGS_REDACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> CopyOut:
    req = register.get_request(p, db, who.user, request_id)
    return CopyOut.of(copies_mod.start_copy(p, db, who.user, req, body.recording_id))


@router.get("/requests/{request_id}/copies", response_model=list[CopyOut], summary="The copies of a request")
def list_copies(
    request_id: RowId,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> list[CopyOut]:
    req = register.get_request(p, db, who.user, request_id)
    return [
        CopyOut.of(c)
        for c in db.scalars(select(RedactedCopy).where(RedactedCopy.request_id == req.id).order_by(RedactedCopy.id))
    ]


@router.get("/copies/{copy_id}", response_model=CopyOut, summary="A copy's state and progress")
def get_copy(
    copy_id: RowId,
    who: Principal = require(Permission.RECORDINGS_REDACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> CopyOut:
    return CopyOut.of(copies_mod.get_copy(p, db, who.user, copy_id))


@router.get("/copies/{copy_id}/faces", summary="The face tracks with a thumbnail each (journaled: shows faces)")
def faces(
    copy_id: RowId,
    who: Principal = require(Permission.RECORDINGS_REDACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> list[dict]:
    return copies_mod.faces(p, db, who.user, copies_mod.get_copy(p, db, who.user, copy_id))


@router.post(
    "/copies/{copy_id}/redact",
    response_model=CopyOut,
    status_code=202,
    summary="Produce the copy: the kept tracks stay visible, every other face is blurred",
)
def redact(
    copy_id: RowId,
    body: RedactIn,
    who: Principal = require(Permission.RECORDINGS_REDACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> CopyOut:
    copy = copies_mod.get_copy(p, db, who.user, copy_id)
    copies_mod.redact(
        p,
        db,
        who.user,
        copy,
        keep_tracks=body.keep_tracks,
        add_regions=[r.model_dump() for r in body.add_regions],
        remove_regions=[r.model_dump() for r in body.remove_regions],
        voice=body.voice,
    )
    return CopyOut.of(copy)


@router.post(
    "/copies/{copy_id}/cancel",
    response_model=CopyOut,
    summary="Stop the face detection or redaction under way: the copy is failed, nothing of the step is kept",
)
def cancel_copy(
    copy_id: RowId,
    who: Principal = require(Permission.RECORDINGS_REDACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> CopyOut:
    return CopyOut.of(copies_mod.cancel(p, db, who.user, copies_mod.get_copy(p, db, who.user, copy_id)))


@router.get(
    "/copies/{copy_id}/still",
    summary="A frame of the original, to draw regions over (JPEG; journaled: shows faces)",
    response_class=Response,
)
def still(
    copy_id: RowId,
    at: float = Query(0.0, ge=0, description="seconds from the recording's start"),
    who: Principal = require(Permission.RECORDINGS_REDACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    shown = copies_mod.still(p, db, who.user, copies_mod.get_copy(p, db, who.user, copy_id), at)
    return Response(
        shown.jpeg,
        media_type="image/jpeg",
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Index": str(shown.frame),
            "X-Frame-Rate": f"{shown.frame_rate:.6g}",
            "X-Frame-Time": f"{shown.at_s:.3f}",
        },
    )


@router.get(
    "/copies/{copy_id}/video",
    summary="Watch the produced copy to review it (journaled)",
    response_class=StreamingResponse,
)
def review_video(
    copy_id: RowId,
    request: Request,
    who: Principal = require(Permission.RECORDINGS_REDACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> StreamingResponse:
    copy = copies_mod.get_copy(p, db, who.user, copy_id)
    size = copy.size_bytes or 0
    wanted = byte_range(request.headers.get("range"), size)
    chunks = copies_mod.copy_stream(p, db, who.user, copy, deliver=False, byte_range=wanted)
    before_streaming(db)
    return ranged_response(chunks, size, wanted, "video/mp4", {"Cache-Control": "no-store"})


@router.post(
    "/copies/{copy_id}/review",
    response_model=CopyOut,
    summary="A person approves the copy for release, or rejects it with a reason",
)
def review(
    copy_id: RowId,
    body: ReviewIn,
    who: Principal = require(Permission.RECORDINGS_REDACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> CopyOut:
    copy = copies_mod.get_copy(p, db, who.user, copy_id)
    copies_mod.review(p, db, who.user, copy, approve=body.approve, reason=body.reason, flagged_seen=body.flagged_seen)
    return CopyOut.of(copy)


@router.get(
    "/copies/{copy_id}/download",
    summary="The approved copy, for the requester (journaled as a communication to them)",
    response_class=StreamingResponse,
)
def download(
    copy_id: RowId,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> StreamingResponse:
    copy = copies_mod.get_copy(p, db, who.user, copy_id)
    name = f"copie-demande-{copy.request_id}-{copy.id}.mp4"
    chunks = copies_mod.copy_stream(p, db, who.user, copy, deliver=True)
    before_streaming(db)
    return StreamingResponse(
        chunks,
        media_type="video/mp4",
        headers={"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{name}"'},
    )
