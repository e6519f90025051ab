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
from temoin.platform import Platform

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_HEADER = "X-CSRF-Token"


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


def get_db(request: Request) -> Iterator[Session]:
    with get_platform(request).session() as db:
        yield db


@dataclass
class Principal:
    user: User
    tenant: Tenant
    session: WebSession | None  # None when authenticated by API token
    scopes: frozenset[Permission] | None = None  # an API token's; None for a session (the role decides)

    @property
    def role(self) -> Role:
        return Role(self.user.role)


async def _csrf_ok(request: Request, session: WebSession) -> bool:
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        token = (await request.form()).get("csrf_token")
    return isinstance(token, str) and token == session.csrf_token


async def current_principal(request: Request, db: Session = Depends(get_db)) -> Principal:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        found = service.api_token_for(db, header[7:].strip())
        if found is None:
            raise HTTPException(401, "API token unknown, expired or revoked: issue a new one")
        user, row = found
        return Principal(user, db.get(Tenant, user.tenant_id), None, service.token_scopes(user, row))
    cookie = request.cookies.get(service.SESSION_COOKIE)
    found = service.session_for(db, cookie) if cookie else None
    if found is None:
        raise HTTPException(401, "sign in first")
    session, user = found
    if not session.second_factor_ok:
        raise HTTPException(401, "second factor required: enter your authenticator code")
    if request.method not in SAFE_METHODS and not await _csrf_ok(request, session):
        raise HTTPException(403, f"missing or wrong CSRF token: send the {CSRF_HEADER} header "
                                 "(or the form's csrf_token field) given at sign-in")
    if user.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise HTTPException(403, "your password was reset: choose a new one first (POST /api/v1/account/password, "
                                 "or the page /account)")
    return Principal(user, db.get(Tenant, user.tenant_id), session)


# What a session whose password was reset may reach before choosing a new one.
PASSWORD_CHANGE_PATHS = frozenset({"/api/v1/account/password", "/account", "/account/password", "/api/v1/session",
                                   "/logout"})


def sign_in_address(request: Request) -> str:
    return client_address(request, get_platform(request).settings.trusted_proxies)


class Require:
    """Guard: the signed-in user's role must grant `permission` (law.access.GRANTS)."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(self, principal: Principal = Depends(current_principal)) -> Principal:
        if not allows(principal.role, self.permission):
            raise HTTPException(403, f"your role ({principal.role.value}) does not allow {self.permission.value}")
        if principal.scopes is not None and self.permission not in principal.scopes:
            raise HTTPException(403, f"this API token's scopes do not include {self.permission.value}: issue a "
                                     "token with that scope")
        return principal


def require(permission: Permission) -> Principal:
    return Depends(Require(permission))


async def current_device(request: Request, db: Session = Depends(get_db)) -> Device:
    """Guard for camera routes: a request signed by an enrolled, active camera."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        device = devices.authenticate(get_platform(request), db, request.headers.get("authorization"),
                                      request.method, path)
    except devices.DeviceAuthFailure as exc:
        if exc.device is not None:  # a known camera failing its signature, or a revoked one: journaled by the
            # minute, one entry per camera and source with a count (web.refusals), never one per request
            refusals = request.app.state.refusals
            refusals.note(tenant_id=exc.device.tenant_id, actor=devices.device_actor(exc.device),
                          camera_id=exc.device.id, address=request.client.host if request.client else None,
                          reason=exc.message, path=request.url.path)
            refusals.flush(get_platform(request), db)
        raise HTTPException(exc.status, exc.message) from None
    db.commit()  # the nonce is spent even if the request fails later
    return device
