"""Shift assignment: a camera is checked out to an agent at the start of a shift and checked in at
the end. The agent identity a camera records (R241-10) comes from here, never from the camera.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.context import Context
from temoin.db import utcnow
from temoin.identity.models import Device, ShiftAssignment, Tenant, User
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.access import Role


class ShiftError(errors.Conflict, ValueError):
    pass


def _not_wired(db: Session, device_id: str) -> list[str]:
    raise RuntimeError("the vault's unfinished uploads are not wired: open the platform (temoin.platform) first")


# The ids of a camera's uploads started but not complete, oldest first: the vault's (vault.ingest), which sits
# above identity, so the platform sets it.
unfinished_uploads: Callable[[Session, str], list[str]] = _not_wired


def current(db: Session, device_id: str) -> ShiftAssignment | None:
    return db.scalar(
        select(ShiftAssignment)
        .where(ShiftAssignment.device_id == device_id, ShiftAssignment.checked_in_at.is_(None))
        .limit(1)
    )


def check_out(p: Context, db: Session, device: Device, agent: User, by: Actor) -> ShiftAssignment:
    if agent.tenant_id != device.tenant_id:
        raise ShiftError("the agent and the camera belong to different tenants")
    if Role(agent.role) != Role.AGENT or not agent.agent_number:
        raise ShiftError(f"{agent.username} is not a wearing agent with a matricule: cameras go to agents only")
    if device.status != "active":
        raise ShiftError(f"camera {device.id} is revoked")
    if current(db, device.id) is not None:
        raise ShiftError(f"camera {device.id} is already checked out: check it in first")
    held = db.scalar(
        select(ShiftAssignment)
        .where(ShiftAssignment.user_id == agent.id, ShiftAssignment.checked_in_at.is_(None))
        .limit(1)
    )
    if held is not None:
        raise ShiftError(f"{agent.username} already holds camera {held.device_id}")
    shift = ShiftAssignment(tenant_id=device.tenant_id, device_id=device.id, user_id=agent.id, checked_out_by=by.id)
    db.add(shift)
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="camera.checked_out",
            actor=by,
            cameras=[device.id],
            details={"agent": agent.agent_number, "username": agent.username},
        ),
        db.get_one(Tenant, device.tenant_id),
    )
    db.commit()
    return shift


@dataclass(frozen=True)
class FootageLeft:
    """What of the shift's footage has not reached the vault when the camera comes back (R241-11: recordings go to
    secure storage on return; the CNIL sanctioned footage left on cameras)."""

    unfinished_uploads: list[str]  # the vault has their manifest, not all their segments
    reported_pending: int | None  # recordings the camera said it holds, in its last settings poll of the shift
    reported_at: datetime | None

    @property
    def any(self) -> bool:
        return bool(self.unfinished_uploads) or bool(self.reported_pending)

    def warnings(self) -> list[str]:
        out = []
        if self.reported_pending:
            out.append(
                f"the camera reported {self.reported_pending} recording(s) not yet offloaded (at "
                f"{self.reported_at:%Y-%m-%d %H:%M} UTC): dock it and offload before it goes out again"
            )
        if self.unfinished_uploads:
            out.append(
                f"{len(self.unfinished_uploads)} upload(s) started but not complete "
                f"({', '.join(self.unfinished_uploads[:5])}): the camera still holds them; dock it to resume"
            )
        return out


def footage_left(db: Session, device: Device, since: datetime) -> FootageLeft:
    unfinished = unfinished_uploads(db, device.id)
    fresh = device.pending_reported_at is not None and device.pending_reported_at >= since
    return FootageLeft(
        unfinished, device.pending_offload if fresh else None, device.pending_reported_at if fresh else None
    )


@dataclass(frozen=True)
class CheckIn:
    shift: ShiftAssignment
    footage_left: FootageLeft

    @property
    def warnings(self) -> list[str]:
        return self.footage_left.warnings()


def check_in(p: Context, db: Session, device: Device, by: Actor) -> CheckIn:
    """End of shift. The camera is taken back even with footage still on it (refusing would change nothing to
    where the footage is), but the person is warned and the journal says so."""
    shift = current(db, device.id)
    if shift is None:
        raise ShiftError(f"camera {device.id} is not checked out")
    left = footage_left(db, device, shift.checked_out_at)
    shift.checked_in_at, shift.checked_in_by = utcnow(), by.id
    agent = db.get(User, shift.user_id)
    tenant = db.get_one(Tenant, device.tenant_id)
    left_details = {"unfinished_uploads": left.unfinished_uploads, "reported_pending": left.reported_pending}
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="camera.checked_in",
            actor=by,
            cameras=[device.id],
            details={"agent": agent.agent_number if agent else None, "footage_left": left_details},
        ),
        tenant,
    )
    if left.any:
        p.record(
            db,
            EntryDraft(
                action=Action.SECURITY,
                event="camera.footage_not_offloaded",
                actor=by,
                recordings=left.unfinished_uploads,
                cameras=[device.id],
                details={"agent": agent.agent_number if agent else None, **left_details, "warnings": left.warnings()},
            ),
            tenant,
        )
    db.commit()
    return CheckIn(shift, left)


def record_pending(db: Session, device: Device, pending: int | None) -> None:
    """The camera's own count of recordings not yet offloaded, from its signed settings poll (the caller commits)."""
    if pending is not None:
        device.pending_offload, device.pending_reported_at = pending, utcnow()
