"""Live sessions: the live button's request, the CSU's acknowledgement and dispatch, the end.

requested -> streaming -> acknowledged -> reinforcements_sent -> ended; the CSU may acknowledge before
the media arrives (requested -> acknowledged), and any open session may end. The incident outlives the stream:
it stays open (its reinforcements engaged) until an operator closes it. Every step is journaled
(communication: a live transmission is one) with its time and author, and announced on the tenant's
events channel. Live transmission exists only where the tenant's legal profile allows it (R241-11:
when the safety of agents, people or property is threatened).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from temoin import errors
from temoin.context import Context
from temoin.coordination import xact_lock
from temoin.db import utcnow
from temoin.errors import Conflict
from temoin.evidence.manifest import GpsFix
from temoin.identity import shifts
from temoin.identity.devices import device_actor, display_name
from temoin.identity.models import Device, Tenant, User
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.profiles import get_profile
from temoin.live.events import EventBus
from temoin.live.models import ORDER, LiveSession, LiveState


class LiveReason(StrEnum):
    # The legal condition (L241-2, R241-11): the safety of the agents, or of people or property, is
    # threatened; presumed when there is an immediate risk to their physical integrity.
    THREAT = "threat"


class LiveRequest(BaseModel):
    reason: LiveReason
    detail: str | None = Field(default=None, max_length=500)
    agent: str | None = Field(default=None, max_length=64)  # what the camera believes; the shift decides
    position: GpsFix | None = None


class LiveError(errors.TemoinError):
    """A live request refused; the subclass says why."""


class LiveNotFound(errors.NotFound, LiveError):
    pass


class LiveNotAllowed(errors.Forbidden, LiveError):
    pass


class LiveConflict(errors.Conflict, LiveError):
    """The session is not in a state that allows it (ended, not acknowledged yet)."""


def _new_id() -> str:
    return f"live-{secrets.token_hex(8)}"


def view(s: LiveSession) -> dict[str, Any]:
    """What the API, the dashboards and the camera see of a session."""

    def t(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    db = object_session(s)  # the camera's display name; its id stays as device_id
    device = db.get(Device, s.device_id) if db is not None else None
    return {
        "id": s.id,
        "state": s.state,
        "device_id": s.device_id,
        "camera": display_name(device) if device is not None else s.device_id,
        "agent": s.agent_id,
        "reason": s.reason,
        "detail": s.detail,
        "position": s.position,
        "requested_at": t(s.requested_at),
        "streaming_at": t(s.streaming_at),
        "acknowledged_at": t(s.acknowledged_at),
        "acknowledged_by": s.acknowledged_by,
        "reinforcements_at": t(s.reinforcements_at),
        "reinforcements_by": s.reinforcements_by,
        "reinforcements_note": s.reinforcements_note,
        "ended_at": t(s.ended_at),
        "ended_by": s.ended_by,
        "end_reason": s.end_reason,
        "incident_closed_at": t(s.incident_closed_at),
        "incident_closed_by": s.incident_closed_by,
        "backup": bool(s.backup_file),
        # Recovered after a server crash: the backup ends at its last checkpoint, a few seconds before the stream did.
        "backup_cut_short": s.backup_cut_short,
    }


def open_for_device(db: Session, device_id: str) -> LiveSession | None:
    return db.scalar(
        select(LiveSession)
        .where(LiveSession.device_id == device_id, LiveSession.state != LiveState.ENDED.value)
        .order_by(LiveSession.requested_at.desc())
        .limit(1)
    )


def request(p: Context, db: Session, bus: EventBus, device: Device, req: LiveRequest) -> tuple[LiveSession, bool]:
    """The live button. Returns (session, created); pressing again while live returns the open session."""
    tenant = db.get_one(Tenant, device.tenant_id)  # the camera's tenant: a foreign key
    profile = get_profile(tenant.profile)
    if not profile.live_transmission_allowed:
        p.record(
            db,
            EntryDraft(
                action=Action.SECURITY,
                event="live.refused",
                actor=device_actor(device),
                cameras=[device.id],
                details={"why": "legal profile", "profile": profile.id},
            ),
            tenant,
        )
        db.commit()
        raise LiveNotAllowed(f"live transmission is not allowed under this tenant's legal profile ({profile.id})")
    # One button press, one session, whichever nodes get the request (held until this transaction ends).
    xact_lock(db, f"live.request:{device.id}")
    existing = open_for_device(db, device.id)
    if existing is not None:
        return existing, False
    shift = shifts.current(db, device.id)
    agent = db.get(User, shift.user_id) if shift else None
    position = req.position.model_dump(mode="json") if req.position else None
    s = LiveSession(
        id=_new_id(),
        tenant_id=tenant.id,
        device_id=device.id,
        agent_id=agent.agent_number if agent else None,
        agent_claimed=req.agent,
        reason=req.reason.value,
        detail=req.detail,
        state=LiveState.REQUESTED.value,
        position=position,
        requested_at=utcnow(),
    )
    db.add(s)
    db.flush()
    p.record(
        db,
        EntryDraft(
            action=Action.COMMUNICATION,
            event="live.requested",
            actor=device_actor(device),
            cameras=[device.id],
            recipients=["csu"],
            details={
                "live_session": s.id,
                "reason": s.reason,
                "detail": s.detail,
                "agent": s.agent_id,
                "agent_claimed": req.agent,
                "position": position,
                "at": s.requested_at.isoformat(),
            },
        ),
        tenant,
    )
    db.commit()
    bus.publish(tenant.id, "alert", view(s))
    return s, True


def _journal(p: Context, db: Session, s: LiveSession, event: str, actor: Actor, **details: Any) -> None:
    p.record(
        db,
        EntryDraft(
            action=Action.COMMUNICATION,
            event=event,
            actor=actor,
            cameras=[s.device_id],
            details={"live_session": s.id, "state": s.state, "agent": s.agent_id, **details},
        ),
        db.get_one(Tenant, s.tenant_id),
    )


def _announce(bus: EventBus, s: LiveSession) -> None:
    bus.publish(s.tenant_id, "session", view(s))


def _open(s: LiveSession) -> None:
    if s.state == LiveState.ENDED.value:
        raise LiveConflict(f"live session {s.id} has ended")


def streaming(p: Context, db: Session, bus: EventBus, s: LiveSession, device: Device, resource_id: str) -> None:
    """A publication was accepted (WHIP). The first moves the session to streaming; later ones (a camera
    reconnecting) are journaled without changing the state."""
    _open(s)
    now = utcnow()
    first = s.streaming_at is None
    if first:
        s.streaming_at = now
    if s.state == LiveState.REQUESTED.value:
        s.state = LiveState.STREAMING.value
    _journal(
        p,
        db,
        s,
        "live.streaming" if first else "live.stream_resumed",
        device_actor(device),
        resource=resource_id,
        at=now.isoformat(),
    )
    db.commit()
    _announce(bus, s)


def acknowledge(p: Context, db: Session, bus: EventBus, s: LiveSession, by: Actor) -> bool:
    """The CSU confirms reception. Idempotent: False if it was already acknowledged."""
    _open(s)
    if s.acknowledged_at is not None:
        return False
    s.acknowledged_at, s.acknowledged_by = utcnow(), by.id
    if ORDER.index(LiveState(s.state)) < ORDER.index(LiveState.ACKNOWLEDGED):
        s.state = LiveState.ACKNOWLEDGED.value
    _journal(p, db, s, "live.acknowledged", by, at=s.acknowledged_at.isoformat())
    db.commit()
    _announce(bus, s)
    return True


def reinforcements(p: Context, db: Session, bus: EventBus, s: LiveSession, by: Actor, note: str | None) -> None:
    _open(s)
    if s.acknowledged_at is None:
        raise LiveConflict(
            "acknowledge the alert before sending reinforcements: the agent must know the CSU has the alert"
        )
    s.reinforcements_at, s.reinforcements_by, s.reinforcements_note = utcnow(), by.id, note
    s.state = LiveState.REINFORCEMENTS_SENT.value
    _journal(p, db, s, "live.reinforcements_sent", by, note=note, at=s.reinforcements_at.isoformat())
    db.commit()
    _announce(bus, s)


def end(p: Context, db: Session, bus: EventBus, s: LiveSession, by: Actor, reason: str) -> bool:
    """False if it had already ended."""
    if s.state == LiveState.ENDED.value:
        return False
    s.ended_at, s.ended_by, s.end_reason = utcnow(), by.id, reason
    s.state = LiveState.ENDED.value
    _journal(
        p,
        db,
        s,
        "live.ended",
        by,
        reason=reason,
        at=s.ended_at.isoformat(),
        position=s.position,
        duration_s=round((s.ended_at - s.requested_at).total_seconds(), 3),
    )
    db.commit()
    _announce(bus, s)
    return True


def close_incident(p: Context, db: Session, s: LiveSession, by: Actor) -> None:
    """The operator closes the incident: the stream ends if it had not, and the incident is over (what follows it,
    the recall of reinforcements, joins the same transaction). Not committed here."""
    if s.incident_closed_at is not None:
        raise Conflict(
            f"the incident of live session {s.id} was already closed by {s.incident_closed_by}: nothing left to recall"
        )
    now = utcnow()
    if s.state != LiveState.ENDED.value:
        s.ended_at, s.ended_by, s.end_reason = now, by.id, "incident_closed"
        s.state = LiveState.ENDED.value
        _journal(
            p,
            db,
            s,
            "live.ended",
            by,
            reason="incident_closed",
            at=now.isoformat(),
            position=s.position,
            duration_s=round((now - s.requested_at).total_seconds(), 3),
        )
    s.incident_closed_at, s.incident_closed_by = now, by.id
    _journal(p, db, s, "live.incident_closed", by, at=now.isoformat())


def update_position(db: Session, bus: EventBus, s: LiveSession, fix: GpsFix) -> None:
    """The agent's position on the CSU's map. Kept on the session (the last fix) and sent to the dashboards;
    the journal has the positions at the request and at the end, not every fix."""
    _open(s)
    s.position = fix.model_dump(mode="json")
    db.commit()
    bus.publish(
        s.tenant_id, "position", {"id": s.id, "device_id": s.device_id, "agent": s.agent_id, "position": s.position}
    )


def backup_stored(p: Context, db: Session, s: LiveSession, sha256: str, size: int, dropped: int = 0) -> None:
    """The backup is in the store; `dropped`: bytes of the stream a store too slow for it could not take (the
    journal says so: the backup then has holes, the camera's own recording does not)."""
    s.backup_sha256, s.backup_bytes = sha256, size
    details: dict[str, object] = {"live_session": s.id, "sha256": sha256, "bytes": size, "file": s.backup_file}
    if dropped:
        details["dropped_bytes"] = dropped
    p.record(
        db,
        EntryDraft(
            action=Action.COLLECTION,
            event="live.backup_stored",
            actor=Actor.system("live"),
            cameras=[s.device_id],
            details=details,
        ),
        db.get_one(Tenant, s.tenant_id),
    )
    db.commit()
