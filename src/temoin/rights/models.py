"""Tables of this domain: the citizens' rights register and the redacted copies made for access requests."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Date, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from temoin.db import Base, UTCDateTime, utcnow


class RequestKind(StrEnum):
    ACCESS = "access"
    ERASURE = "erasure"
    LIMITATION = "limitation"
    RECTIFICATION = "rectification"
    OBJECTION = "objection"


class RequestStatus(StrEnum):
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"
    REFUSED = "refused"
    RESTRICTED = "restricted"  # a procedure is ongoing: the person goes through the CNIL (indirect access)


OPEN_STATUSES = (RequestStatus.RECEIVED, RequestStatus.IN_PROGRESS)


class RightsRequest(Base):
    """One request from a person (loi 78-17 arts. 104 to 108), from receipt to the answer."""

    __tablename__ = "rights_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.RECEIVED.value)
    # Personal data: what the person wore, where and when they were; never copied into the journal.
    person_description: Mapped[str] = mapped_column(Text)
    contact: Mapped[str] = mapped_column(Text)
    received_on: Mapped[date] = mapped_column(Date)  # local (Europe/Paris) day of receipt
    deadline: Mapped[date] = mapped_column(Date)  # received_on + the tenant's rights_deadline_months
    # Where and when the facts took place, to find the candidate recordings.
    facts_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    facts_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    place_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    place_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    radius_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    agent_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decision: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    procedure_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)  # for a restriction
    erased: Mapped[list] = mapped_column(JSON, default=list)  # [{recording_id, certificate_id}]
    # In an EPCI, the requester's commune (INSEE code) among those served: only its users (and EPCI-wide
    # users) see and handle the request. NULL in a single commune's tenant.
    commune: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_rights_requests_tenant_received", "tenant_id", "received_on"),)


class CopyState(StrEnum):
    DETECTING = "detecting"  # faces being found in the recording
    TRACKS_READY = "tracks_ready"  # the operator picks the requester's track(s) and extra regions
    REDACTING = "redacting"  # the copy is being produced
    TO_REVIEW = "to_review"  # a person must look at it before release
    APPROVED = "approved"  # may be handed to the requester
    REJECTED = "rejected"  # not good enough: redact again
    FAILED = "failed"
    DELETED = "deleted"  # its recording was deleted: key destroyed, files removed (vault.derived)


class RedactedCopy(Base):
    """A copy of one recording where every face but the requester's is hidden, for an access request."""

    __tablename__ = "redacted_copies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("rights_requests.id"), index=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=CopyState.DETECTING.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    tracks: Mapped[list] = mapped_column(JSON, default=list)  # [{id, frames, first/last frame, start/end_s, box}]
    keep_tracks: Mapped[list] = mapped_column(JSON, default=list)
    add_regions: Mapped[list] = mapped_column(JSON, default=list)  # boxes hidden by hand
    remove_regions: Mapped[list] = mapped_column(JSON, default=list)  # a detection centred here stays clear
    # Thumbnails (faces) and the copy are sealed at rest like the vault's blobs: one data key per copy,
    # wrapped by the master key.
    data_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    folder: Mapped[str | None] = mapped_column(String(255), nullable=True)  # under TEMOIN_HOME/rights
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Who chose what to hide last (rights.copies.redact): with created_by, an author, who may not approve it.
    redacted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    produced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    review_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ProposalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # approved by a second person and carried out
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # by its author, or superseded when the request closed


class ErasureProposal(Base):
    """Recordings one person proposes to erase for an erasure request; a second person approves (four eyes).

    Each recording is among the request's candidates (rights.candidates) or carries the proposer's
    justification in `justifications` (recording id -> text)."""

    __tablename__ = "erasure_proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("rights_requests.id"), index=True)
    recording_ids: Mapped[list] = mapped_column(JSON)
    justifications: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=ProposalState.PENDING.value)
    proposed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # of a rejection
