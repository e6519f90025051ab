"""Identity tables. Every row that belongs to a commune carries its tenant_id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from temoin.db import Base, UTCDateTime, utcnow


class Tenant(Base):
    """A commune, or an EPCI running one service for several communes."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="commune")  # commune | epci
    communes: Mapped[list] = mapped_column(JSON, default=list)  # INSEE codes served
    profile: Mapped[str] = mapped_column(String(64))
    territory: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # GeoJSON
    authorised_cameras: Mapped[int] = mapped_column(Integer, default=0)  # prefect's authorisation (R241-8)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settings: Mapped[dict | None] = mapped_column(JSON, nullable=True, default=dict)  # see tenant_settings


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    username: Mapped[str] = mapped_column(String(64))  # unique within its tenant only
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    agent_number: Mapped[str | None] = mapped_column(String(64), nullable=True)  # matricule
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # encrypted
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)  # refuses code replay
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # In an EPCI, the communes (INSEE codes) whose recordings this user may know of; NULL: every commune.
    communes: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # Credential life cycle (identity.lifecycle): a reset password must be changed at the next sign-in; a
    # password change makes the browsers remembered before it strangers again (identity.known_devices).
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # Usernames are per tenant: another commune cannot learn that a name is taken elsewhere.
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)


class WebSession(Base):
    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie value
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    second_factor_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The permissions (law.access.Permission values) the token may use, a subset of its owner's role;
    # NULL only for tokens issued before scopes existed: the role's permissions.
    scopes: Mapped[list | None] = mapped_column(JSON, nullable=True)


class LoginAttempt(Base):
    """One sign-in attempt, counted by identity.throttle per account, per address and per known device."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(200), index=True)  # user@tenant when known, else as typed
    address: Mapped[str] = mapped_column(String(64), index=True)
    factor: Mapped[str] = mapped_column(String(8), default="password")  # password | totp
    device: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # a known device's id
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    success: Mapped[bool] = mapped_column(Boolean)


class Device(Base):
    """A body-worn camera issued by the service (R241-9), known by its Ed25519 public key."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    serial: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(200), default="")
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Recordings the camera said it still holds, not yet offloaded, in its last signed settings poll.
    pending_offload: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pending_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (UniqueConstraint("tenant_id", "serial"),)


class DeviceKey(Base):
    """One key in a camera's history. Re-enrolment adds a key and never replaces one, so each recording is
    checked against the key that was valid when the camera signed it (Device.public_key is only the key that
    signs the camera's requests now).

    valid_from is None for a camera's first key (a camera may record before it is enrolled); for a later key
    it is its enrolment time. valid_until is the revocation time (None while the key is in force)."""

    __tablename__ = "device_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The platform's signed certificate of this key (evidence.certificates), issued at enrolment and again at
    # revocation: someone who can write the database but not read the platform key cannot add a camera key.
    certificate: Mapped[str | None] = mapped_column(Text, nullable=True)

    def valid_at(self, at: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= at) and (
            self.valid_until is None or at <= self.valid_until
        )


class EnrolmentCode(Base):
    """A one-time code an administrator hands to a camera to enrol it."""

    __tablename__ = "enrolment_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


class DeviceNonce(Base):
    """Nonces of signed device requests already seen: a captured request cannot be replayed."""

    __tablename__ = "device_nonces"

    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ShiftAssignment(Base):
    """A camera checked out to an agent for a shift: the identity the camera records and burns in."""

    __tablename__ = "shift_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    checked_out_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    checked_out_by: Mapped[str] = mapped_column(String(64))
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    checked_in_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
