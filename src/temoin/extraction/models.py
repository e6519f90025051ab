"""Tables of extractions (packages handed to a named recipient for a procedure), and the kinds they name."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from temoin.db import Base, UTCDateTime, utcnow


class RecipientKind(StrEnum):
    """Who may receive an extraction (R241-12, 2019 list)."""

    JUDICIAL_POLICE = "judicial_police"  # officiers et agents de police judiciaire
    STATE_INSPECTION = "state_inspection"  # services d'inspection de l'État
    DISCIPLINARY_AUTHORITY = "disciplinary_authority"  # autorité disciplinaire
    TRAINER = "trainer"  # formation des agents: anonymised copies only (R241-13)


class ProcedureType(StrEnum):
    JUDICIAL = "judicial"
    ADMINISTRATIVE = "administrative"
    DISCIPLINARY = "disciplinary"
    TRAINING = "training"


class MediaKind(StrEnum):
    ORIGINAL = "original"  # the camera's bytes, exactly
    TRIMMED = "trimmed"  # a stream copy of a time range of the original (no re-encoding)
    REDACTED = "redacted"  # anonymised (faces, voices) for training


class Extraction(Base):
    """One package built for one recipient. The row and its journal entries outlive the package file,
    which is plaintext and deleted after a few days (see docs/extraction.md)."""

    __tablename__ = "extractions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recipient_name: Mapped[str] = mapped_column(String(200))
    recipient_kind: Mapped[str] = mapped_column(String(32))
    procedure_type: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(200))
    recording_ids: Mapped[list] = mapped_column(JSON, default=list)
    trim: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # requested and kept ranges
    media_kind: Mapped[str] = mapped_column(String(16))  # original | trimmed | redacted
    # The zip's name (vault.artefact_blobs: sealed in the blob store; a package made before is a file of that path
    # under TEMOIN_HOME); NULL once deleted (expiry). Its hash stays, as does the journal.
    package_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The data key sealing the zip in the store, wrapped by the master key (NULL: made before, or deleted).
    package_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    package_sha256: Mapped[str] = mapped_column(String(64))
    package_bytes: Mapped[int] = mapped_column(BigInteger)
    sums_sha256: Mapped[str] = mapped_column(String(64))  # SHA-256 of the signed SHA256SUMS
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    package_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    redacted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_extractions_tenant_created", "tenant_id", "created_at"),
        Index("ix_extractions_expires", "expires_at"),
    )
