"""The incident record of a live session: its timeline, read back from the journal.

Every step of an incident is already journaled where it happens (the request, the acknowledgement and by whom,
each viewing, the CCTV cameras shown, PTZ moves, reinforcements, the end). The record is those entries, in order:
nothing is kept twice, and what the record shows is exactly what the tamper-evident journal proves.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.live.models import LiveSession

SESSION_KEYS = ("live_session", "session_id")  # how the domains name the session in an entry's details
MARGIN = timedelta(minutes=1)


def _about(body: dict, session_id: str) -> bool:
    details = body.get("details") or {}
    return any(details.get(key) == session_id for key in SESSION_KEYS)


def timeline(db: Session, s: LiveSession) -> list[dict[str, Any]]:
    """The journal entries about this session, oldest first: when, what, who, and the details."""
    start = s.requested_at - MARGIN
    end = (s.ended_at or utcnow()) + MARGIN
    # Entries of the tenant in the session's time window (indexed by tenant and time); the session filter
    # reads the canonical body, the record itself.
    rows = db.scalars(
        select(JournalEntry)
        .where(JournalEntry.tenant_id == s.tenant_id, JournalEntry.at >= start, JournalEntry.at <= end)
        .order_by(JournalEntry.chain, JournalEntry.seq)
    )
    out = []
    for row in rows:
        body = parse_body(row.body)
        if not _about(body, s.id):
            continue
        actor = body.get("actor") or {}
        out.append(
            {
                "seq": row.seq,
                "at": body["at"],
                "action": body["action"],
                "event": body["event"],
                "actor": {"kind": actor.get("kind"), "id": actor.get("id"), "name": actor.get("name")},
                "cameras": body.get("cameras") or [],
                "recipients": body.get("recipients") or [],
                "details": {k: v for k, v in (body.get("details") or {}).items() if k not in SESSION_KEYS},
                "hash": row.hash,
            }
        )
    return out
