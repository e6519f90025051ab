"""WHIP bearer tokens (RFC 9725, section 4.5): how a standard encoder publishes a camera's live session.

A Témoin camera signs its requests with its device key; OBS, GStreamer's whipsink or a vendor camera that
speaks WHIP can only send `Authorization: Bearer <token>`. An administrator issues a token for one camera
(`tmw_...`, shown once, only its SHA-256 kept): it lets its holder publish that camera's live session over
WHIP, and nothing else (no other route accepts it). It stops working when revoked, or when the camera is
revoked. Issuing, revoking and refusing are journaled.
"""

from __future__ import annotations

import secrets as stdlib_secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.context import Context
from temoin.db import utcnow
from temoin.identity import secrets as sec
from temoin.identity.models import Device, Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.live.models import PublishToken
from temoin.live.sessions import LiveConflict, LiveNotFound

PREFIX = "tmw"  # Témoin WHIP: tells it apart from a user's API token (tmn_) at a glance


def view(t: PublishToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "device_id": t.device_id,
        "label": t.label,
        "created_at": t.created_at.isoformat(),
        "created_by": t.created_by,
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        "revoked_by": t.revoked_by,
    }


def issue(p: Context, db: Session, by: User, device_id: str, label: str | None) -> tuple[PublishToken, str]:
    device = db.get(Device, device_id)
    if device is None or device.tenant_id != by.tenant_id:
        raise LiveNotFound(f"no camera {device_id} in your tenant")
    if device.status != "active":
        raise LiveConflict(f"camera {device_id} is revoked: it cannot be given a WHIP token")
    token = sec.new_token(PREFIX)
    row = PublishToken(
        id=f"wt-{stdlib_secrets.token_hex(6)}",
        tenant_id=device.tenant_id,
        device_id=device.id,
        token_hash=sec.token_hash(token),
        label=label,
        created_at=utcnow(),
        created_by=by.username,
    )
    db.add(row)
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="live.publish_token_issued",
            actor=actor_of(by),
            cameras=[device.id],
            details={"token": row.id, "label": label},
        ),
        db.get_one(Tenant, device.tenant_id),
    )
    db.commit()
    return row, token


def revoke(p: Context, db: Session, by: User, token_id: str) -> PublishToken:
    row = db.get(PublishToken, token_id)
    if row is None or row.tenant_id != by.tenant_id:
        raise LiveNotFound(f"no WHIP token {token_id} in your tenant")
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by = utcnow(), by.username
        p.record(
            db,
            EntryDraft(
                action=Action.ADMINISTRATION,
                event="live.publish_token_revoked",
                actor=actor_of(by),
                cameras=[row.device_id],
                details={"token": row.id},
            ),
            db.get_one(Tenant, row.tenant_id),
        )
        db.commit()
    return row


def listing(db: Session, tenant_id: int) -> list[dict[str, Any]]:
    rows = db.scalars(
        select(PublishToken).where(PublishToken.tenant_id == tenant_id).order_by(PublishToken.created_at.desc())
    )
    return [view(r) for r in rows]


def device_for(db: Session, token: str) -> Device | None:
    """The camera a WHIP token publishes for; None when the token is unknown, revoked, or its camera is."""
    if not token.startswith(PREFIX + "_"):
        return None
    row = db.scalar(select(PublishToken).where(PublishToken.token_hash == sec.token_hash(token)))
    if row is None or row.revoked_at is not None:
        return None
    device = db.get(Device, row.device_id)
    if device is None or device.status != "active":
        return None
    row.last_used_at = utcnow()
    return device
