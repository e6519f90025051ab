"""Request dependencies: the platform, a database session, who is asking, and what they may do.

Deny by default: a route is reachable only through one of these guards, and the route-by-role
test walks every route to check which guard it carries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from temoin.identity import devices, service
from temoin.identity.addresses import client_address
from temoin.identity.models import Device, Tenant, User, WebSession
from temoin.law.access import Permission, Role, allows
from temoin.live import publish_tokens
from temoin.platform import Platform
from temoin.web import problems

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_HEADER = "X-CSRF-Token"
# Every 401 says how to authenticate (RFC 9110, 11.6.1).
USER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="temoin"'}
_DEVICE_CHALLENGE = {"WWW-Authenticate": f'{devices.AUTH_SCHEME} realm="temoin"'}
WHIP_CHALLENGE = 'Bearer realm="temoin-whip"'
# An unsafe request without the session's CSRF token (on a page: a form left open past its session).
CSRF_REFUSED = (
    f"missing or wrong CSRF token: send the {CSRF_HEADER} header (or the form's csrf_token field) given at sign-in"
)


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


def get_db(request: Request) -> Iterator[Session]:
    with get_platform(request).session() as db:
        yield db


def before_streaming(db: Session) -> None:
    """End the request's transaction before its body is streamed: the session lives until the response is sent,
    and a slow reader (a paused player keeps its request open) must not hold a database connection meanwhile.
    Read what the response needs from the database first: an attribute read after this opens a new transaction."""
    db.commit()


@dataclass
class Principal:
    user: User
    tenant: Tenant
    session: WebSession | None  # None when authenticated by API token
    scopes: frozenset[Permission] | None = None  # an API token's; None for a session (the role decides)
    token_id: int | None = None  # the API token the request carried (sign-out revokes it)

    @property
    def role(self) -> Role:
        return Role(self.user.role)


async def csrf_sent(request: Request) -> str | None:
    """The CSRF token an unsafe request carries (header, or the field of a form post). Read in the event loop
    (a form body is read asynchronously), so that the principal's database checks can run off it."""
    if (
        request.method in SAFE_METHODS
        or service.SESSION_COOKIE not in request.cookies
        or request.headers.get("authorization", "").lower().startswith("bearer ")
    ):
        return None  # only a signed-in browser's request needs one
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        field = (await request.form()).get("csrf_token")
        token = field if isinstance(field, str) else None  # an uploaded file is no token
    return token


def current_principal(
    request: Request, db: Session = Depends(get_db), csrf: str | None = Depends(csrf_sent)
) -> Principal:
    """Who is asking. A plain function: FastAPI runs it in its thread pool, never in the event loop, which
    carries the live media and must not wait on the database."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        by_token = service.api_token_for(db, header[7:].strip())
        if by_token is None:
            raise HTTPException(
                401,
                "API token unknown, expired or revoked: issue a new one",
                headers={"WWW-Authenticate": 'Bearer realm="temoin", error="invalid_token"'},
            )
        user, row = by_token
        return _released(
            db, Principal(user, db.get_one(Tenant, user.tenant_id), None, service.token_scopes(user, row), row.id)
        )
    cookie = request.cookies.get(service.SESSION_COOKIE)
    by_session = service.session_for(db, cookie) if cookie else None
    if by_session is None:
        raise HTTPException(401, "sign in first", headers=USER_CHALLENGE)
    session, user = by_session
    if not session.second_factor_ok:
        raise HTTPException(401, "second factor required: enter your authenticator code", headers=USER_CHALLENGE)
    if request.method not in SAFE_METHODS and csrf != session.csrf_token:
        raise HTTPException(403, CSRF_REFUSED)
    if user.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise HTTPException(
            403, "your password was reset: choose a new one first (POST /api/v1/account/password, or the page /account)"
        )
    return _released(db, Principal(user, db.get_one(Tenant, user.tenant_id), session))


def _released(db: Session, principal: Principal) -> Principal:
    """End the check's read transaction: its connection goes back to the pool now, not when the response
    ends (an events stream lasts minutes, a WHEP request waits on the media plane). The loaded rows stay
    usable (expire_on_commit=False); the route's own queries take a connection when they need one."""
    db.commit()
    return principal


# What a session whose password was reset may reach before choosing a new one.
PASSWORD_CHANGE_PATHS = frozenset(
    {"/api/v1/account/password", "/account", "/account/password", "/api/v1/session", "/logout"}
)


def sign_in_address(request: Request) -> str:
    return client_address(request, get_platform(request).settings.trusted_proxies)


class Guard:
    """What every permission guard checks: the signed-in user's role must grant `permission`
    (law.access.GRANTS), and an API token's scopes must include it. Each kind of guard is a FastAPI
    dependency whose `__call__` says what it needs from the request (the route-by-role test finds them by
    this class)."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def check(self, principal: Principal) -> Principal:
        if not allows(principal.role, self.permission):
            raise HTTPException(403, f"your role ({principal.role.value}) does not allow {self.permission.value}")
        if principal.scopes is not None and self.permission not in principal.scopes:
            raise HTTPException(
                403, f"this API token's scopes do not include {self.permission.value}: issue a token with that scope"
            )
        return principal


class Require(Guard):
    """Guard for the API: the signed-in user (or API token) must hold `permission`."""

    def __call__(self, principal: Principal = Depends(current_principal)) -> Principal:
        return self.check(principal)


def require(permission: Permission) -> Principal:
    return Depends(Require(permission))


# Routes whose body is streamed to disk, never held whole: they take a signed "unsigned-payload" marker instead
# of the body's digest, their bytes being bound by the segment's SHA-256 in the signed manifest (vault.ingest).
STREAMED_DEVICE_ROUTES = frozenset({("PUT", "/api/v1/ingest/recordings/{recording_id}/segments/{index}")})


def _streamed(request: Request) -> bool:
    return (request.method, getattr(request.scope.get("route"), "path", None)) in STREAMED_DEVICE_ROUTES


async def device_request_body(request: Request) -> bytes | None:
    """The body a camera's signature must cover, read whole (bounded by web.hardening.BodyLimit) before the
    route does anything with it; the route reads it again from the request's cache. None on a streamed route."""
    if _streamed(request):
        return None
    return await request.body()


def current_device(
    request: Request, db: Session = Depends(get_db), body: bytes | None = Depends(device_request_body)
) -> Device:
    """Guard for camera routes: a request signed by an enrolled, active camera, over its body too (run in the
    thread pool)."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        device = devices.authenticate(
            get_platform(request),
            db,
            request.headers.get("authorization"),
            request.method,
            path,
            digest_header=request.headers.get("content-digest"),
            body=body,
        )
    except devices.DeviceAuthFailure as exc:
        if exc.device is not None:  # a known camera failing its signature, or a revoked one: journaled by the
            # minute, one entry per camera and source with a count (web.refusals), never one per request
            refusals = request.app.state.refusals
            refusals.note(
                tenant_id=exc.device.tenant_id,
                actor=devices.device_actor(exc.device),
                camera_id=exc.device.id,
                address=request.client.host if request.client else None,
                reason=exc.message,
                path=request.url.path,
            )
            refusals.flush(get_platform(request), db)
        status = problems.status_of(exc)[0]
        raise HTTPException(status, exc.message, headers=_DEVICE_CHALLENGE if status == 401 else None) from None
    if _streamed(request):
        # A segment upload commits the nonce itself while its body starts arriving (web.routes.ingest): its fsync
        # was the longest step before the first byte of every 4 MiB piece. Flushed, it already refuses a replay.
        return device
    db.commit()  # the nonce is spent even if the request fails later; the connection goes back to the pool
    return device


def whip_publisher(
    request: Request, db: Session = Depends(get_db), body: bytes | None = Depends(device_request_body)
) -> Device:
    """Guard for WHIP publication: the camera's signed request, or a standard encoder's bearer token for that
    camera (RFC 9725; `live.publish_tokens`), accepted here and nowhere else."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        device = publish_tokens.device_for(db, header[7:].strip())
        if device is None:
            raise HTTPException(
                401,
                "WHIP token unknown, revoked, or its camera revoked: ask an administrator "
                "for the camera's current token",
                headers={"WWW-Authenticate": f'{WHIP_CHALLENGE}, error="invalid_token"'},
            )
        db.commit()  # when it was last used; and the connection goes back to the pool
        return device
    try:
        return current_device(request, db, body)
    except HTTPException as exc:
        if exc.status_code == 401:  # a standard encoder that sent nothing learns what to send
            exc.headers = {"WWW-Authenticate": f"{WHIP_CHALLENGE}, {_DEVICE_CHALLENGE['WWW-Authenticate']}"}
        raise
