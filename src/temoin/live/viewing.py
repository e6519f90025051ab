"""Live viewing is a communication of personal data (R241-14): each viewer's start and end are journaled,
with the viewer as recipient. The start entry is written before any media can flow (the answer has not
left the server yet); the end entry carries the start, the end and the duration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from temoin.context import Context
from temoin.db import utcnow
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.live.models import LiveSession


def started(p: Context, db: Session, s: LiveSession, viewer: User, resource_id: str) -> datetime:
    at = utcnow()
    p.record(
        db,
        EntryDraft(
            action=Action.COMMUNICATION,
            event="live.viewing_started",
            actor=actor_of(viewer),
            cameras=[s.device_id],
            recipients=[viewer.username],
            details={"live_session": s.id, "agent": s.agent_id, "viewing": resource_id, "started_at": at.isoformat()},
        ),
        db.get_one(Tenant, s.tenant_id),
    )
    db.commit()
    return at


def ended(
    p: Context, db: Session, s: LiveSession, viewer: User, resource_id: str, started_at: datetime, reason: str
) -> None:
    at = utcnow()
    p.record(
        db,
        EntryDraft(
            action=Action.COMMUNICATION,
            event="live.viewing_ended",
            actor=actor_of(viewer),
            cameras=[s.device_id],
            recipients=[viewer.username],
            details={
                "live_session": s.id,
                "agent": s.agent_id,
                "viewing": resource_id,
                "started_at": started_at.isoformat(),
                "ended_at": at.isoformat(),
                "duration_s": round((at - started_at).total_seconds(), 3),
                "reason": reason,
            },
        ),
        db.get_one(Tenant, s.tenant_id),
    )
    db.commit()


def refused(p: Context, db: Session, viewer: User, session_id: str, why: str) -> None:
    """A viewer asked for a live session they may not see (another tenant's, or none): journaled in the
    viewer's own tenant chain."""
    p.record(
        db,
        EntryDraft(
            action=Action.SECURITY,
            event="live.viewing_refused",
            actor=actor_of(viewer),
            details={"live_session": session_id, "why": why},
        ),
        db.get_one(Tenant, viewer.tenant_id),
    )
    db.commit()
