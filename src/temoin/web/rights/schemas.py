"""The rights API's request and response bodies (the JSON fields clients rely on)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, Field

from temoin.rights import limitation, register
from temoin.rights.candidates import RequestCandidates
from temoin.rights.models import ErasureProposal, RedactedCopy, RequestKind, RequestStatus, RightsRequest

# A row id in a path: a positive 64-bit integer (a larger one is a 422, not a database overflow).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class RequestIn(BaseModel):
    kind: RequestKind
    person_description: str = Field(
        min_length=3, max_length=5000, description="what the person wore, where and when they were"
    )
    contact: str = Field(min_length=3, max_length=1000)
    received_on: date | None = Field(default=None, description="local day of receipt (default: today)")
    facts_start: datetime | None = None
    facts_end: datetime | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    radius_m: float | None = Field(default=None, gt=0, le=50_000)
    agent: str | None = Field(default=None, max_length=128)
    commune: str | None = Field(
        default=None, max_length=16, description="in an EPCI: the requester's commune (INSEE code) among those served"
    )


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
    def of(cls, r: RightsRequest) -> RequestOut:
        return cls(
            id=r.id,
            kind=r.kind,
            status=r.status,
            person_description=r.person_description,
            contact=r.contact,
            received_on=r.received_on,
            deadline=r.deadline,
            overdue=register.is_overdue(r),
            facts_start=r.facts_start,
            facts_end=r.facts_end,
            lat=r.place_lat,
            lon=r.place_lon,
            radius_m=r.radius_m,
            agent=r.agent_ref,
            decision=r.decision,
            reason=r.reason,
            procedure_reference=r.procedure_reference,
            erased=list(r.erased or []),
            closed_at=r.closed_at,
            commune=r.commune,
        )


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
    propose_restriction: bool = Field(
        description="a candidate is kept for a judicial procedure: restrict access (the person goes through the CNIL)"
    )
    judicial_holds: list[str]

    @classmethod
    def of(cls, found: RequestCandidates) -> CandidatesOut:
        return cls(
            candidates=[CandidateOut(**c.__dict__) for c in found.candidates],
            propose_restriction=found.propose_restriction,
            judicial_holds=found.judicial_holds,
        )


class ErasureIn(BaseModel):
    recording_ids: list[str] = Field(min_length=1, max_length=200)
    justifications: dict[str, str] = Field(
        default_factory=dict,
        max_length=200,
        description="recording id -> why it shows the person, for each recording the request's candidate search "
        "does not find",
    )


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
    def of(cls, x: ErasureProposal) -> ProposalOut:
        return cls(
            id=x.id,
            request_id=x.request_id,
            recording_ids=list(x.recording_ids),
            justified=sorted(x.justifications or {}),
            state=x.state,
            proposed_at=x.proposed_at,
            decided_at=x.decided_at,
            reason=x.reason,
        )


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
    keep_tracks: list[int] = Field(
        default_factory=list, max_length=100, description="the requester's face track(s): left visible"
    )
    add_regions: list[RegionIn] = Field(
        default_factory=list, max_length=500, description="extra regions to hide (faces the detector missed)"
    )
    remove_regions: list[RegionIn] = Field(
        default_factory=list, max_length=500, description="regions left clear: a detection centred in one is not a face"
    )
    voice: bool = Field(default=True, description="also disguise the voices")


class ReviewIn(BaseModel):
    approve: bool
    reason: str | None = Field(default=None, max_length=2000)
    flagged_seen: bool = Field(
        default=False, description="the reviewer looked at every stretch the detector flagged as unsure"
    )


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
    def of(cls, c: RedactedCopy) -> CopyOut:
        return cls(
            id=c.id,
            request_id=c.request_id,
            recording_id=c.recording_id,
            state=c.state,
            progress=c.progress,
            error=c.error,
            tracks=list(c.tracks or []),
            keep_tracks=list(c.keep_tracks or []),
            add_regions=list(c.add_regions or []),
            remove_regions=list(c.remove_regions or []),
            sha256=c.sha256,
            size_bytes=c.size_bytes,
            produced_at=c.produced_at,
            reviewed_at=c.reviewed_at,
            review_reason=c.review_reason,
            delivered_at=c.delivered_at,
        )


class LimitationIn(BaseModel):
    recording_ids: list[str] = Field(min_length=1, max_length=500)


class LiftLimitationIn(BaseModel):
    recording_id: str = Field(max_length=128)
    reason: str = Field(min_length=3, max_length=1000)


class RectificationIn(BaseModel):
    recording_ids: list[str] = Field(min_length=1, max_length=500)
    text: str = Field(min_length=3, max_length=limitation.MAX_NOTE)
