"""Vault tables: the catalogue of recordings, their segments, holds and deletion certificates."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from temoin.db import Base, UTCDateTime, utcnow


class RecordingState(StrEnum):
    RECEIVING = "receiving"  # manifest accepted, segments arriving: not visible
    STORED = "stored"  # verified, visible to those entitled
    QUARANTINED = "quarantined"  # failed verification: kept apart, never visible as evidence
    DELETED = "deleted"  # data key and blobs destroyed; the row remains as proof of deletion


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    agent_ref: Mapped[str] = mapped_column(String(128))  # the wearing agent's identifier
    agent_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    trigger: Mapped[str] = mapped_column(String(32))
    persons_informed: Mapped[bool] = mapped_column(Boolean)
    not_informed_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outside_territory: Mapped[bool] = mapped_column(Boolean, default=False)
    # The commune of an EPCI where it was made (INSEE code, from the GPS track); NULL: none known.
    commune: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    clock_offset_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    clock_drift_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    categories: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default=RecordingState.RECEIVING)
    state_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    manifest: Mapped[str] = mapped_column(Text)  # the signed envelope, exactly as received
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    chain_head: Mapped[str] = mapped_column(String(64))
    segment_count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # The data key, wrapped by the master key. Destroyed (NULL) on deletion: crypto-shredding.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    master_key_id: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retention_until: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the field checks found at ingest (vault.field_checks.Flag values), and what the camera declared
    # when the vault recorded something else (the corrected time, the shift's agent); the manifest keeps both.
    flags: Mapped[list | None] = mapped_column(JSON, nullable=True, default=list)
    declared_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    declared_agent_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)

    segments: Mapped[list[Segment]] = relationship(
        back_populates="recording", order_by="Segment.index", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_recordings_tenant_agent_started", "tenant_id", "agent_ref", "started_at"),
        Index("ix_recordings_tenant_started", "tenant_id", "started_at"),
        Index("ix_recordings_state_retention", "state", "retention_until"),
        Index("ix_recordings_device", "device_id"),
    )


class Segment(Base):
    __tablename__ = "segments"

    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    chain: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_s: Mapped[float] = mapped_column(Float)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)

    recording: Mapped[Recording] = relationship(back_populates="segments")


class Hold(Base):
    """A recording kept beyond its retention for a procedure (judicial, administrative, disciplinary)."""

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    procedure_type: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(200))
    placed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lift_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Placed by an extraction for this procedure (the package handed over): the original must outlive it.
    extraction_id: Mapped[str | None] = mapped_column(ForeignKey("extractions.id"), nullable=True)


class Limitation(Base):
    """A person's limitation request freezes a recording (loi 78-17 art. 107; RGPD art. 18): no consultation, no
    extraction, no deletion by retention or erasure, until a person lifts it."""

    __tablename__ = "limitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("rights_requests.id"), index=True)
    placed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lift_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class RecordingNote(Base):
    """A rectification (loi 78-17 art. 106): the footage is evidence and never altered, so what the person says
    is inaccurate is attached to the recording, shown with it and carried in its packages."""

    __tablename__ = "recording_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("rights_requests.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    written_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeletionCertificate(Base):
    """Signed proof that a recording was deleted: what, when, under which rule."""

    __tablename__ = "deletion_certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), unique=True)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text)  # canonical JSON
    signature: Mapped[str] = mapped_column(String(128))


class PendingBlobDeletion(Base):
    """A recording's blob folder whose removal was decided (key destroyed, in the same transaction) and not yet
    done: the next pass removes it, so no pass has to list the whole store to find what a killed one left."""

    __tablename__ = "pending_blob_deletions"

    prefix: Mapped[str] = mapped_column(String(300), primary_key=True)  # tenant/recording
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Quarantine(Base):
    """An upload that failed verification, kept apart with the reason, for investigation."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(128))
    recording_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    evidence_path: Mapped[str | None] = mapped_column(String(500), nullable=True)


class AccessGrant(Base):
    """A consultation opened with a motive: a short-lived right to read one recording's content.

    The motive is given (and journaled) once; playback requests then carry the grant.
    """

    __tablename__ = "access_grants"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    motive_code: Mapped[str] = mapped_column(String(64))
    motive_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
