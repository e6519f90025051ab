"""Live sessions: one press of the live button, from the request to the end, with who did what when."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from temoin.db import Base, UTCDateTime, utcnow


class LiveState(StrEnum):
    REQUESTED = "requested"  # the agent pressed the button; the CSU is alerted
    STREAMING = "streaming"  # the camera's media reaches the platform
    ACKNOWLEDGED = "acknowledged"  # an operator confirmed reception (the agent is told)
    REINFORCEMENTS_SENT = "reinforcements_sent"
    ENDED = "ended"


ORDER = list(LiveState)


class LiveSession(Base):
    __tablename__ = "live_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # matricule, from the shift
    agent_claimed: Mapped[str | None] = mapped_column(String(64), nullable=True)  # what the camera said
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(500), nullable=True)
    state: Mapped[str] = mapped_column(String(24), default=LiveState.REQUESTED.value)
    position: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the last fix: t, lat, lon, accuracy_m
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    streaming_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reinforcements_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reinforcements_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reinforcements_note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The incident outlives the picture: reinforcements stay engaged until an operator closes it.
    incident_closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    incident_closed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Server-side backup of the live feed (legal profile's live_backup_recording), sealed like the vault's
    # blobs: the data key is wrapped by the master key, the file never holds plaintext.
    backup_file: Mapped[str | None] = mapped_column(String(255), nullable=True)
    backup_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    backup_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    backup_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The server recording it died mid-stream: the backup was cut at its last authenticated record and promoted
    # at the next start-up (live.backup_recovery); it holds what was received up to about the crash.
    backup_cut_short: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class PublishToken(Base):
    """A camera's WHIP bearer token (RFC 9725): lets a standard encoder (OBS, GStreamer's whipsink, a vendor
    camera speaking WHIP) publish that camera's live session, and nothing else. Only its hash is kept."""

    __tablename__ = "live_publish_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LiveMediaOwner(Base):
    """Which node carries a live stream's media, or a CCTV viewing (TEMOIN_NODE_URL set): WHIP and WHEP requests
    reaching another node are forwarded to it. The owner renews `expires_at`; a node that died stops renewing, and
    once it has passed, another node may take the stream."""

    __tablename__ = "live_media_owners"

    # A live session's id (its stream), or `cctv-viewer:TENANT:CAMERA:RESOURCE` (a CCTV viewing, which stays on the
    # node that answered it: its DELETE and the camera's withdrawal are forwarded there).
    stream: Mapped[str] = mapped_column(String(160), primary_key=True)
    node_url: Mapped[str] = mapped_column(String(255), index=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
