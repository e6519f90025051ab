"""Tables of the supervision domain: the registry of fixed CCTV cameras (vidéoprotection) of each tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from temoin.db import Base, UTCDateTime, utcnow


class CctvCamera(Base):
    """A fixed CCTV camera of the commune's vidéoprotection network, as the CSU knows it.

    The key is composite, (tenant_id, id): an id such as "cctv-01" is the commune's own name for its camera, so two
    communes served by one platform may both have a "cctv-01", and a query by id can only ever reach the asking
    tenant's camera. heading_deg is where a fixed camera looks, and where a PTZ camera looks at pan 0 (its
    mounting heading); fov_deg is the horizontal field of view (at the widest zoom for a PTZ camera).
    """

    __tablename__ = "cctv_cameras"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    height_m: Mapped[float] = mapped_column(Float, default=6.0)  # mounting height above the street
    heading_deg: Mapped[float] = mapped_column(Float)
    fov_deg: Mapped[float] = mapped_column(Float)
    range_m: Mapped[float] = mapped_column(Float, default=150.0)  # how far it usefully sees
    ptz: Mapped[bool] = mapped_column(Boolean, default=False)
    max_zoom: Mapped[float] = mapped_column(Float, default=20.0)
    stream_url: Mapped[str] = mapped_column(String(500))  # RTSP; may carry credentials: never sent to a browser
    onvif_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    onvif_username: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # AES-256-GCM under a key derived from the master key (supervision.registry.seal_password); never logged,
    # never returned.
    onvif_password_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CctvRegistryVersion(Base):
    """One counter per tenant, bumped in the same transaction as every change to its CCTV registry: a server's
    in-memory spatial index is rebuilt when the counter moved (even if another process, e.g. the CLI, changed
    the registry)."""

    __tablename__ = "cctv_registry_versions"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
