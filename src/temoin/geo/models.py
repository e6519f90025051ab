"""The geography a tenant loads for its maps: its streets (the territory stays on the tenant: it is law)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from temoin.db import Base, UTCDateTime, utcnow


class TenantStreets(Base):
    """A tenant's street list, as a GeoJSON FeatureCollection of named lines (properties: kind, name).

    A table apart from the tenant's row: a town's streets weigh megabytes, and the tenant is read on every
    request."""

    __tablename__ = "tenant_streets"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    geojson: Mapped[dict] = mapped_column(JSON)
    street_count: Mapped[int] = mapped_column(Integer)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
