"""Shift assignment: a camera is checked out to an agent at the start of a shift and checked in at
the end. The agent identity a camera records (R241-10) comes from here, never from the camera.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.identity.models import Device, ShiftAssignment, Tenant, User
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.access import Role
from temoin.platform import Platform


class ShiftError(ValueError):
    pass


def current(db: Session, device_id: str) -> ShiftAssignment | None:
    return db.scalar(select(ShiftAssignment).where(ShiftAssignment.device_id == device_id,
                                                   ShiftAssignment.checked_in_at.is_(None)).limit(1))


def check_out(p: Platform, db: Session, device: Device, agent: User, by: Actor) -> ShiftAssignment:
    if agent.tenant_id != device.tenant_id:
        raise ShiftError("the agent and the camera belong to different tenants")
    if Role(agent.role) != Role.AGENT or not agent.agent_number:
        raise ShiftError(f"{agent.username} is not a wearing agent with a matricule: cameras go to agents only")
    if device.status != "active":
        raise ShiftError(f"camera {device.id} is revoked")
    if current(db, device.id) is not None:
        raise ShiftError(f"camera {device.id} is already checked out: check it in first")
    held = db.scalar(select(ShiftAssignment).where(ShiftAssignment.user_id == agent.id,
                                                   ShiftAssignment.checked_in_at.is_(None)).limit(1))
    if held is not None:
        raise ShiftError(f"{agent.username} already holds camera {held.device_id}")
    shift = ShiftAssignment(tenant_id=device.tenant_id, device_id=device.id, user_id=agent.id, checked_out_by=by.id)
    db.add(shift)
    p.record(db, EntryDraft(action=Action.ADMINISTRATION, event="camera.checked_out", actor=by, cameras=[device.id],
                            details={"agent": agent.agent_number, "username": agent.username}),
             db.get(Tenant, device.tenant_id))
    db.commit()
    return shift


def check_in(p: Platform, db: Session, device: Device, by: Actor) -> ShiftAssignment:
    shift = current(db, device.id)
    if shift is None:
        raise ShiftError(f"camera {device.id} is not checked out")
    shift.checked_in_at, shift.checked_in_by = utcnow(), by.id
    agent = db.get(User, shift.user_id)
    p.record(db, EntryDraft(action=Action.ADMINISTRATION, event="camera.checked_in", actor=by, cameras=[device.id],
                            details={"agent": agent.agent_number if agent else None}),
             db.get(Tenant, device.tenant_id))
    db.commit()
    return shift
