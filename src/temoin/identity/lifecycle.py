"""Credentials with a life cycle: password change, reset by whoever grants the role (identity.grants), with a
new TOTP secret and a forced change at the next sign-in, deactivation that ends sessions and tokens at once,
API tokens listed and revoked. Every step journaled; no secret ever reaches the journal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from temoin import errors
from temoin.context import Context
from temoin.db import utcnow
from temoin.identity import grants, secrets as sec
from temoin.identity.errors import IdentityConflict
from temoin.identity.models import ApiToken, Tenant, User, WebSession
from temoin.identity.service import NewUser, actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.law.access import Role


class UserNotFound(errors.NotFound, LookupError):
    pass


@dataclass
class Ended:
    sessions: int
    tokens: int


def _journal(p: Context, db: Session, event: str, by: User, details: dict) -> None:
    p.record(
        db,
        EntryDraft(action=Action.ADMINISTRATION, event=event, actor=actor_of(by), details=details),
        db.get_one(Tenant, by.tenant_id),
    )


def end_sessions_and_tokens(db: Session, user: User, keep_session: str | None = None, tokens: bool = True) -> Ended:
    """Delete the user's sessions (but `keep_session`, an id_hash) and revoke their tokens, now."""
    stmt = delete(WebSession).where(WebSession.user_id == user.id)
    if keep_session is not None:
        stmt = stmt.where(WebSession.id_hash != keep_session)
    sessions = cast("CursorResult[Any]", db.execute(stmt)).rowcount or 0
    revoked = 0
    if tokens:
        revoked = (
            cast(
                "CursorResult[Any]",
                db.execute(
                    update(ApiToken)
                    .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow())
                ),
            ).rowcount
            or 0
        )
    return Ended(sessions, revoked)


def change_password(
    p: Context, db: Session, user: User, current: str, new: str, keep_session: str | None = None
) -> Ended:
    """The user changes their own password (the current one is asked again). Their other sessions end; tokens
    stay (scripts), and browsers remembered before become strangers for throttling."""
    if not sec.check_password(user.password_hash, current):
        raise IdentityConflict("the current password is wrong: nothing was changed")
    if new == current:
        raise IdentityConflict("choose a new password, different from the current one")
    user.password_hash = sec.hash_password(new)  # WeakPassword if too short
    user.must_change_password = False
    user.password_changed_at = utcnow()
    ended = end_sessions_and_tokens(db, user, keep_session=keep_session, tokens=False)
    _journal(p, db, "user.password_changed", user, {"username": user.username, "other_sessions_ended": ended.sessions})
    db.commit()
    return ended


def user_of_tenant(db: Session, tenant: Tenant, username: str) -> User:
    user = db.scalar(select(User).where(User.tenant_id == tenant.id, User.username == username))
    if user is None:
        raise UserNotFound(f"no user {username!r} in {tenant.name}")
    return user


def _check(by: User, tenant: Tenant, target: User, what: str) -> None:
    if target.tenant_id != tenant.id or by.tenant_id != tenant.id:
        raise UserNotFound(f"no user {target.username!r} in {tenant.name}")
    if target.id == by.id:
        raise IdentityConflict(f"you cannot {what} your own account: ask whoever grants your role")
    grants.check_may_manage(Role(by.role), tenant, Role(target.role), what)


def reset_credentials(p: Context, db: Session, by: User, tenant: Tenant, target: User) -> NewUser:
    """A new one-time password and a new TOTP secret (the old authenticator stops working), to hand over; the
    user must change the password at the next sign-in. Sessions end and tokens are revoked at once."""
    _check(by, tenant, target, "reset")
    password, totp_secret = sec.random_password(), sec.new_totp_secret()
    target.password_hash = sec.hash_password(password)
    target.totp_secret = sec.seal_totp_secret(p.keyring.master_key, totp_secret, target.username)
    target.totp_last_step = 0
    target.must_change_password = True
    target.password_changed_at = utcnow()
    ended = end_sessions_and_tokens(db, target)
    _journal(
        p,
        db,
        "user.credentials_reset",
        by,
        {
            "username": target.username,
            "role": target.role,
            "sessions_ended": ended.sessions,
            "tokens_revoked": ended.tokens,
        },
    )
    db.commit()
    return NewUser(target, password, totp_secret)


def set_active(
    p: Context, db: Session, by: User, tenant: Tenant, target: User, active: bool, reason: str | None = None
) -> Ended:
    """Deactivate (sessions end, tokens revoked, sign-in refused, at once) or reactivate an account."""
    _check(by, tenant, target, "deactivate" if not active else "reactivate")
    ended = Ended(0, 0)
    target.active = active
    if active:
        target.deactivated_at = None
    else:
        target.deactivated_at = utcnow()
        ended = end_sessions_and_tokens(db, target)
    _journal(
        p,
        db,
        "user.deactivated" if not active else "user.reactivated",
        by,
        {
            "username": target.username,
            "role": target.role,
            "reason": (reason or "").strip() or None,
            "sessions_ended": ended.sessions,
            "tokens_revoked": ended.tokens,
        },
    )
    db.commit()
    return ended


def tokens_of(db: Session, user: User) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())))


def revoke_token(p: Context, db: Session, user: User, token_id: int, reason: str | None = None) -> ApiToken:
    row = db.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise UserNotFound(f"you have no API token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        details = {"token_id": row.id, "name": row.name} | ({"reason": reason} if reason else {})
        _journal(p, db, "api_token.revoked", user, details)
        db.commit()
    return row
