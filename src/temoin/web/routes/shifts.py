"""Shift assignment: cameras checked out to agents for a shift, and checked in at the end."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.identity import shifts
from temoin.identity.models import Device, ShiftAssignment, User
from temoin.identity.service import actor_of
from temoin.law.access import Permission
from temoin.platform import Platform
from temoin.web.deps import Principal, get_db, get_platform, require

router = APIRouter(prefix="/api/v1/shifts", tags=["shifts"])


class CheckOutIn(BaseModel):
    device_id: str = Field(max_length=128)
    username: str = Field(max_length=64)


class ShiftOut(BaseModel):
    device_id: str
    username: str
    agent: str | None
    checked_out_at: datetime
    checked_in_at: datetime | None
    warnings: list[str] = Field(default_factory=list, description="at check-in: footage not yet offloaded")


def _out(db: Session, shift: ShiftAssignment) -> ShiftOut:
    user = db.get_one(User, shift.user_id)
    return ShiftOut(
        device_id=shift.device_id,
        username=user.username,
        agent=user.agent_number,
        checked_out_at=shift.checked_out_at,
        checked_in_at=shift.checked_in_at,
    )


def _device(db: Session, who: Principal, device_id: str) -> Device:
    device = db.get(Device, device_id)
    if device is None or device.tenant_id != who.tenant.id:
        raise HTTPException(404, f"no camera {device_id} in your tenant")
    return device


@router.get("", response_model=list[ShiftOut], summary="Cameras currently checked out")
def current_shifts(
    who: Principal = require(Permission.DEVICES_ASSIGN), db: Session = Depends(get_db)
) -> list[ShiftOut]:
    rows = db.scalars(
        select(ShiftAssignment)
        .where(ShiftAssignment.tenant_id == who.tenant.id, ShiftAssignment.checked_in_at.is_(None))
        .order_by(ShiftAssignment.checked_out_at)
    )
    return [_out(db, s) for s in rows]


@router.post("/checkout", response_model=ShiftOut, status_code=201, summary="Check a camera out to an agent")
def check_out(
    body: CheckOutIn,
    who: Principal = require(Permission.DEVICES_ASSIGN),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> ShiftOut:
    device = _device(db, who, body.device_id)
    agent = db.scalar(select(User).where(User.username == body.username, User.tenant_id == who.tenant.id))
    if agent is None:
        raise HTTPException(404, f"no user {body.username} in your tenant")
    return _out(db, shifts.check_out(p, db, device, agent, actor_of(who.user)))


@router.post("/checkin/{device_id}", response_model=ShiftOut, summary="Check a camera in at the end of a shift")
def check_in(
    device_id: str,
    who: Principal = require(Permission.DEVICES_ASSIGN),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> ShiftOut:
    device = _device(db, who, device_id)
    done = shifts.check_in(p, db, device, actor_of(who.user))
    return _out(db, done.shift).model_copy(update={"warnings": done.warnings})
