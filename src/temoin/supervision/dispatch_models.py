"""Tables of dispatch: the last position of each agent's camera, and the CSU's reinforcement orders.

A position is personal data: only the last one per camera is kept (one row per device, overwritten), and
only while its wearer is on shift. The track of a recording is in its signed manifest, not here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from temoin.db import Base, UTCDateTime, utcnow


class AgentStatus(StrEnum):
    PATROL = "patrol"  # on shift, standby (pre-event buffer)
    RECORDING = "recording"
    LIVE = "live"  # the live button: this agent needs help, not a candidate to give it


class OrderState(StrEnum):
    SENT = "sent"  # the CSU sent it; the camera has not confirmed yet
    ACKNOWLEDGED = "acknowledged"  # the camera signalled it to the wearer and confirmed
    ARRIVED = "arrived"  # the agent's position came within reach of the target
    CANCELLED = "cancelled"  # by the CSU, or because the live session ended


OPEN_STATES = (OrderState.SENT.value, OrderState.ACKNOWLEDGED.value)


class AgentPosition(Base):
    """The last fix a camera sent, with its wearer (from the shift) and status."""

    __tablename__ = "agent_positions"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)  # the wearer on shift
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # matricule
    status: Mapped[str] = mapped_column(String(16), default=AgentStatus.PATROL.value)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    fix_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the fix's time, on the camera's clock
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # the platform's clock


class ReinforcementOrder(Base):
    """One agent sent by the CSU to the position of a live session."""

    __tablename__ = "reinforcement_orders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("live_sessions.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)  # the reinforcing camera
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # its wearer's matricule
    state: Mapped[str] = mapped_column(String(16), default=OrderState.SENT.value)
    target_lat: Mapped[float] = mapped_column(Float)
    target_lon: Mapped[float] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float, nullable=True)  # estimated route, when sent
    eta_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_by: Mapped[str] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
