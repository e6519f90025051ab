"""Tenants, users, sign-in with a second factor, sessions, API tokens, throttling."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from temoin.context import Context
from temoin.db import utcnow
from temoin.identity import known_devices, secrets as sec, throttle
from temoin.identity.errors import IdentityConflict, IdentityError, SignInFailed, Throttled
from temoin.identity.models import ApiToken, Tenant, User, WebSession
from temoin.identity.tenant_settings import TenantSettings, settings_of
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.access import GRANTS, Permission, Role
from temoin.law.profiles import get_profile
from temoin.texts import label

__all__ = ["IdentityError", "Throttled"]  # re-exported: callers catch them from here


def actor_of(user: User) -> Actor:
    return Actor(
        kind="user", id=user.username, name=user.display_name, function=label("fr", "role", Role(user.role).value)
    )  # the journal keeps the French label


def create_tenant(
    p: Context,
    db: Session,
    *,
    slug: str,
    name: str,
    profile: str,
    authorised_cameras: int,
    territory: dict | None = None,
    kind: str = "commune",
    communes: list[str] | None = None,
    demo: bool = False,
    by: Actor | None = None,
) -> Tenant:
    legal = get_profile(profile)  # raises with the list of known profiles
    if legal.territory_required and not territory:
        raise IdentityError(
            f"profile {profile} needs the authorised territory (CSI R241-8 II: cameras are used only "
            "on the territory of the authorised communes): give it as GeoJSON (a Polygon or "
            "MultiPolygon of the communes, e.g. `--territory communes.geojson`)"
        )
    if territory:
        _check_territory(territory)
    if db.scalar(select(Tenant).where(Tenant.slug == slug)):
        raise IdentityError(f"tenant {slug!r} already exists")
    if authorised_cameras < 0:
        raise IdentityError("the number of authorised cameras cannot be negative")
    tenant = Tenant(
        slug=slug,
        name=name,
        profile=profile,
        authorised_cameras=authorised_cameras,
        territory=territory,
        kind=kind,
        communes=communes or [],
        demo=demo,
    )
    db.add(tenant)
    db.flush()
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="tenant.created",
            actor=by or Actor.system("admin"),
            details={"slug": slug, "name": name, "profile": profile, "authorised_cameras": authorised_cameras},
        ),
        tenant,
    )
    return tenant


def _check_territory(territory: dict) -> None:
    from temoin.geo.territory import validate_territory

    try:
        validate_territory(territory)
    except (ValueError, KeyError, TypeError) as exc:
        raise IdentityError(str(exc)) from None


def set_territory(p: Context, db: Session, tenant: Tenant, territory: dict, by: Actor | None = None) -> None:
    """Give a tenant its authorised territory (or a new one); from then on each recording is checked against it.
    Journaled; recordings already stored keep what was found when they arrived."""
    _check_territory(territory)
    had = tenant.territory is not None
    tenant.territory = territory
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="tenant.territory_set",
            actor=by or Actor.system("admin"),
            details={"replaced": had},
        ),
        tenant,
    )


def _journalable(settings: dict[str, Any]) -> dict[str, Any]:
    """A tile URL may carry a provider's key in its query: the journal keeps the address without it."""
    out = dict(settings)
    if out.get("tile_url"):
        out["tile_url"] = out["tile_url"].split("?", 1)[0] + ("?…" if "?" in out["tile_url"] else "")
    return out


def update_settings(
    p: Context, db: Session, tenant: Tenant, changes: dict[str, Any], by: Actor | None = None
) -> TenantSettings:
    """Change some of a tenant's settings, validated whole (an unknown key or a bad value changes nothing);
    a value of None puts the setting back to its default. Journaled with the old and new values."""
    unknown = sorted(set(changes) - set(TenantSettings.model_fields))
    if unknown:
        raise IdentityError(
            f"unknown tenant setting(s) {', '.join(unknown)}; known: {', '.join(TenantSettings.model_fields)}"
        )
    current = settings_of(tenant).model_dump(exclude_unset=True)
    stored = dict(tenant.settings or {})
    for key, value in changes.items():
        if value is None:
            stored.pop(key, None)
        else:
            stored[key] = value
    try:
        # The values changed now meet today's rules; the others were checked when they were set.
        new = TenantSettings.model_validate(stored, context={"stored": set(stored) - set(changes)})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise IdentityError(f"tenant settings refused ({problems}); nothing was changed") from None
    tenant.settings = new.model_dump(mode="json", exclude_unset=True)
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="tenant.settings_changed",
            actor=by or Actor.system("admin"),
            details={"before": _journalable(current), "after": _journalable(tenant.settings)},
        ),
        tenant,
    )
    return new


@dataclass
class NewUser:
    user: User
    password: str
    totp_secret: str

    @property
    def totp_uri(self) -> str:
        return sec.totp_uri(self.totp_secret, self.user.username)


def create_user(
    p: Context,
    db: Session,
    tenant: Tenant,
    *,
    username: str,
    display_name: str,
    role: Role,
    password: str | None = None,
    agent_number: str | None = None,
    by: Actor | None = None,
    communes: list[str] | None = None,
) -> NewUser:
    """`communes`: in an EPCI, the communes (INSEE codes) whose recordings the user may know of; None: all."""
    if db.scalar(select(User).where(User.tenant_id == tenant.id, User.username == username)):
        raise IdentityConflict(f"user {username!r} already exists in {tenant.name}")
    if communes is not None:
        served = [str(c) for c in tenant.communes or []]
        unknown = sorted(set(communes) - set(served))
        if not communes or unknown:
            raise IdentityConflict(
                f"{tenant.name} serves the communes {', '.join(served) or '(none recorded)'}; "
                f"{'unknown: ' + ', '.join(unknown) if unknown else 'name at least one'}"
            )
    password = password or sec.random_password()
    totp_secret = sec.new_totp_secret()
    user = User(
        tenant_id=tenant.id,
        username=username,
        display_name=display_name,
        role=Role(role).value,
        agent_number=agent_number,
        communes=sorted(set(communes)) if communes is not None else None,
        password_hash=sec.hash_password(password),
        totp_secret=sec.seal_totp_secret(p.keyring.master_key, totp_secret, username),
    )
    db.add(user)
    db.flush()
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="user.created",
            actor=by or Actor.system("admin"),
            details={"username": username, "role": user.role}
            | ({"communes": user.communes} if user.communes is not None else {}),
        ),
        tenant,
    )
    return NewUser(user, password, totp_secret)


def totp_secret_of(p: Context, user: User) -> str:
    assert user.totp_secret is not None
    return sec.open_totp_secret(p.keyring.master_key, user.totp_secret, user.username)


BAD_SIGN_IN = (
    "unknown user or wrong password (if your username is used in several communes, sign in as username@commune)"
)


def find_user(db: Session, login: str, tenant: str | None = None) -> User | None:
    """The user a sign-in names: `username` with the tenant's slug given apart, or `username@tenant`, or a bare
    username that exactly one tenant uses. Usernames are per tenant (none is reserved across communes)."""
    login = login.strip()
    if tenant is None and "@" in login:
        login, _, tenant = login.rpartition("@")
    stmt = select(User).where(User.username == login)
    if tenant:
        stmt = stmt.join(Tenant, Tenant.id == User.tenant_id).where(Tenant.slug == tenant.strip())
    found = list(db.scalars(stmt.limit(2)))
    return found[0] if len(found) == 1 else None


def account_of(db: Session, user: User) -> str:
    """The key failures are counted under: the username qualified by its tenant."""
    return f"{user.username}@{db.get_one(Tenant, user.tenant_id).slug}"


def check_password(
    p: Context,
    db: Session,
    username: str,
    password: str,
    address: str,
    device_cookie: str | None = None,
    tenant: str | None = None,
) -> User:
    """First factor, throttled (identity.throttle): per account and per address, or per device when the
    browser's cookie says this user signed in from it before."""
    user = find_user(db, username, tenant)
    account = account_of(db, user) if user is not None else username.strip().lower()[:200]
    device = known_devices.device_of(p, user, device_cookie) if user is not None else None
    throttle.check(p, db, account=account, address=address, device=device)
    ok = user is not None and user.active and sec.check_password(user.password_hash, password)
    if user is None:
        sec.burn_time(password)
    throttle.record(db, account=account, address=address, device=device, factor="password", success=ok)
    if not ok:
        if user is not None:
            tenant_row = db.get_one(Tenant, user.tenant_id)
            p.record(
                db,
                EntryDraft(
                    action=Action.SECURITY,
                    event="signin.failed",
                    actor=actor_of(user),
                    details={"address": address, "factor": "password", "known_device": device is not None},
                ),
                tenant_row,
            )
        db.commit()
        raise SignInFailed(BAD_SIGN_IN)
    db.commit()
    assert user is not None  # ok implies a user
    return user


def check_second_factor(
    p: Context, db: Session, user: User, code: str, address: str = "unknown", device_cookie: str | None = None
) -> None:
    """Second factor. Failed codes count with failed passwords. The code's time step is consumed by a
    conditional UPDATE, so two sessions presenting the same code at once cannot both pass."""
    account = account_of(db, user)
    device = known_devices.device_of(p, user, device_cookie)
    throttle.check(p, db, account=account, address=address, device=device)
    step = sec.totp_step_if_valid(totp_secret_of(p, user), code, user.totp_last_step)
    if step is not None:
        spent = db.execute(
            update(User)
            .where(User.id == user.id, User.totp_last_step < step)
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
        if cast("CursorResult[Any]", spent).rowcount != 1:
            step = None  # another session used this code (or a later one) first
    if step is None:
        db.rollback()
        throttle.record(db, account=account, address=address, device=device, factor="totp", success=False)
        db.commit()
        raise SignInFailed("wrong or already used code: type the current 6-digit code of your authenticator")
    db.commit()
    db.refresh(user)


SESSION_COOKIE = "temoin_session"


def open_session(p: Context, db: Session, user: User) -> tuple[str, WebSession]:
    token = secrets.token_urlsafe(32)
    session = WebSession(
        id_hash=sec.token_hash(token),
        user_id=user.id,
        second_factor_ok=False,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=utcnow() + timedelta(hours=p.settings.session_hours),
    )
    db.add(session)
    db.commit()
    return token, session


def session_for(db: Session, token: str) -> tuple[WebSession, User] | None:
    session = db.get(WebSession, sec.token_hash(token))
    if session is None or session.expires_at <= utcnow():
        return None
    user = db.get(User, session.user_id)
    if user is None or not user.active:
        return None
    return session, user


def close_session(db: Session, token: str, p: Context | None = None) -> None:
    """Sign-out: the session row is deleted, so the cookie opens nothing any more, wherever it was copied."""
    session = db.get(WebSession, sec.token_hash(token))
    if session is not None and p is not None:
        user = db.get_one(User, session.user_id)
        p.record(
            db,
            EntryDraft(action=Action.SECURITY, event="signout", actor=actor_of(user), details={}),
            db.get_one(Tenant, user.tenant_id),
        )
    db.execute(delete(WebSession).where(WebSession.id_hash == sec.token_hash(token)))
    db.commit()


TOKEN_DEFAULT_DAYS = 30
TOKEN_MAX_DAYS = 90


def role_permissions(user: User) -> frozenset[Permission]:
    return GRANTS.get(Role(user.role), frozenset())


def issue_api_token(
    p: Context,
    db: Session,
    user: User,
    name: str,
    days: int = TOKEN_DEFAULT_DAYS,
    scopes: list[Permission] | None = None,
) -> str:
    """A token for scripts, limited to `scopes` (default: every permission of the user's role), which must be
    permissions of the user's role; at most TOKEN_MAX_DAYS."""
    if not 1 <= days <= TOKEN_MAX_DAYS:
        raise IdentityError(f"an API token lives 1 to {TOKEN_MAX_DAYS} days; issue a new one when it expires")
    mine = role_permissions(user)
    wanted = sorted({Permission(s) for s in scopes} if scopes is not None else mine)
    beyond = [s.value for s in wanted if s not in mine]
    if beyond or not wanted:
        raise IdentityError(
            f"scopes {', '.join(beyond) or '(none)'} refused: a token may carry only permissions "
            f"of your role ({', '.join(sorted(x.value for x in mine)) or 'none'})"
        )
    token = sec.new_token("tmn")
    row = ApiToken(
        user_id=user.id,
        token_hash=sec.token_hash(token),
        name=name,
        expires_at=utcnow() + timedelta(days=days),
        scopes=[s.value for s in wanted],
    )
    db.add(row)
    db.flush()
    tenant = db.get_one(Tenant, user.tenant_id)
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="api_token.issued",
            actor=actor_of(user),
            details={"token_id": row.id, "name": name, "days": days, "scopes": row.scopes},
        ),
        tenant,
    )
    db.commit()
    return token


def api_token_for(db: Session, token: str) -> tuple[User, ApiToken] | None:
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == sec.token_hash(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    user = db.get(User, row.user_id)
    return (user, row) if user is not None and user.active else None


def token_scopes(user: User, row: ApiToken) -> frozenset[Permission]:
    """What a token may do: its scopes, never beyond its owner's role now."""
    granted = role_permissions(user)
    if row.scopes is None:
        return granted
    return frozenset(Permission(s) for s in row.scopes if s in set(Permission)) & granted


def user_for_api_token(db: Session, token: str) -> User | None:
    found = api_token_for(db, token)
    return found[0] if found else None


def expires(at: datetime) -> int:
    return max(0, int((at - utcnow()).total_seconds()))
