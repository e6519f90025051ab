"""Tables of the Axis content destination: connections, containers and objects as the Body Worn system wrote them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from temoin.db import Base, UTCDateTime, utcnow


class AxisConnection(Base):
    """One connection file issued to a tenant's Body Worn system: its credential (hashed) and its RSA key pair.

    Issuing a new file revokes the previous connection (rotation); the key pairs of revoked connections are kept,
    wrapped by the master key, because clips encrypted for them may still be in the vault."""

    __tablename__ = "axis_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of BlobAPIKey (a 256-bit random secret)
    public_key_id: Mapped[str] = mapped_column(String(128), unique=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary)  # PKCS#8 DER, AES-GCM under the master key
    master_key_id: Mapped[str] = mapped_column(String(32))
    want_encryption: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AxisContainer(Base):
    """A Swift container: System, Users, Devices, one per recording, or one of rejected content."""

    __tablename__ = "axis_containers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))  # system | users | devices | recording | rejected
    meta: Mapped[dict] = mapped_column(JSON, default=dict)  # lower-cased key -> value exactly as received
    # Where the object bodies are sealed (blob prefix and data key): the recording's id for a recording.
    storage_id: Mapped[str] = mapped_column(String(128), unique=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    recording_id: Mapped[str | None] = mapped_column(ForeignKey("recordings.id"), nullable=True, index=True)
    next_slot: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (UniqueConstraint("tenant_id", "name"),)


class AxisObject(Base):
    """A Swift object: its metadata as received, and where its body is sealed (blob slot) with its hashes."""

    __tablename__ = "axis_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("axis_containers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(1024))
    kind: Mapped[str] = mapped_column(String(16))  # clip | key | gnss | bookmark | system | user | device | other
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    slot: Mapped[int] = mapped_column(Integer)  # blob index under the container's storage id
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str] = mapped_column(String(32))  # Swift's ETag
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Users/ and Devices/ objects: the Témoin user (by matricule) and camera they stand for.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"), nullable=True)

    __table_args__ = (UniqueConstraint("container_id", "name"),)
