"""What a camera asks of the platform (device-signed): its settings, its agent, the clock."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.orm import Session

from temoin.identity import shifts
from temoin.identity.models import Device, Tenant, User
from temoin.law.profiles import get_profile
from temoin.web.deps import current_device, get_db

router = APIRouter(prefix="/api/v1/camera", tags=["camera"])


class AssignmentOut(BaseModel):
    agent_id: str
    display_name: str


class CameraConfig(BaseModel):
    device_id: str
    tenant: str
    profile: str
    pre_event_buffer_s: int
    territory: dict | None
    assignment: AssignmentOut | None
    platform_time: float


@router.get("/config", response_model=CameraConfig, summary="The camera's settings, agent and the platform clock")
def config(
    pending: int | None = Query(None, ge=0, le=1_000_000, description="recordings the camera holds, not yet offloaded"),
    device: Device = Depends(current_device),
    db: Session = Depends(get_db),
) -> CameraConfig:
    shifts.record_pending(db, device, pending)  # checked at check-in: footage must not stay on cameras
    db.commit()
    tenant = db.get_one(Tenant, device.tenant_id)
    profile = get_profile(tenant.profile)
    shift = shifts.current(db, device.id)
    agent = db.get(User, shift.user_id) if shift else None
    return CameraConfig(
        device_id=device.id,
        tenant=tenant.slug,
        profile=profile.id,
        pre_event_buffer_s=profile.pre_event_buffer_s,
        territory=tenant.territory,
        assignment=AssignmentOut(agent_id=agent.agent_number, display_name=agent.display_name) if agent else None,
        platform_time=time.time(),
    )
