"""Sign-in (password, then TOTP), sign-out, the account's own credentials (password, API tokens), for scripts
and the web pages alike."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from temoin.identity import known_devices, lifecycle, service
from temoin.identity.models import ApiToken, Tenant
from temoin.identity.secrets import WeakPassword
from temoin.law.access import Permission
from temoin.platform import Platform
from temoin.web import problems
from temoin.web.deps import Principal, current_principal, get_db, get_platform, sign_in_address

router = APIRouter(prefix="/api/v1", tags=["session"])
TokenId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]  # a 64-bit id: beyond it, 422 (not a database overflow)


class SignIn(BaseModel):
    username: str = Field(max_length=200, description="your username, or username@commune")
    password: str = Field(max_length=256)
    tenant: str | None = Field(
        default=None, max_length=64, description="your commune's identifier, when your username is used in several"
    )


class SecondFactor(BaseModel):
    code: str = Field(max_length=12)


class SessionOut(BaseModel):
    username: str
    role: str
    tenant: str
    second_factor_ok: bool
    csrf_token: str
    must_change_password: bool = False


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    days: int = Field(default=service.TOKEN_DEFAULT_DAYS, ge=1, le=service.TOKEN_MAX_DAYS)
    scopes: list[Permission] = Field(
        min_length=1, max_length=len(Permission), description="the permissions the token may use, among your role's"
    )


class TokenOut(BaseModel):
    id: int
    name: str
    scopes: list[str] | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, t: ApiToken) -> TokenOut:
        return cls(
            id=t.id,
            name=t.name,
            scopes=t.scopes,
            created_at=t.created_at,
            expires_at=t.expires_at,
            revoked_at=t.revoked_at,
        )


class PasswordIn(BaseModel):
    current: str = Field(max_length=256)
    new: str = Field(max_length=256)


def set_session_cookie(p: Platform, response: Response, token: str) -> None:
    response.set_cookie(
        service.SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=p.settings.secure_cookies,
        max_age=p.settings.session_hours * 3600,
        path="/",
    )


def remember_device(p: Platform, request: Request, response: Response, user) -> None:
    """After a full sign-in: this browser is a known device of the user (identity.known_devices)."""
    if known_devices.device_of(p, user, request.cookies.get(known_devices.COOKIE)) is None:
        response.set_cookie(
            known_devices.COOKIE,
            known_devices.issue(p, user),
            httponly=True,
            samesite="strict",
            secure=p.settings.secure_cookies,
            max_age=int(known_devices.LIFETIME.total_seconds()),
            path="/",
        )


def sign_in(
    p: Platform,
    db: Session,
    request: Request,
    response: Response,
    username: str,
    password: str,
    tenant: str | None = None,
):
    user = service.check_password(
        p, db, username, password, sign_in_address(request), request.cookies.get(known_devices.COOKIE), tenant
    )
    token, session = service.open_session(p, db, user)
    set_session_cookie(p, response, token)
    return user, session


def second_factor(p: Platform, db: Session, request: Request, code: str):
    cookie = request.cookies.get(service.SESSION_COOKIE)
    found = service.session_for(db, cookie) if cookie else None
    if found is None:
        raise HTTPException(401, "sign in with your password first")
    session, user = found
    service.check_second_factor(p, db, user, code, sign_in_address(request), request.cookies.get(known_devices.COOKIE))
    session.second_factor_ok = True
    db.commit()
    return user, session


@router.post("/session", response_model=SessionOut, summary="Sign in, first factor (password)")
def post_session(
    body: SignIn,
    request: Request,
    response: Response,
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> SessionOut:
    user, session = sign_in(p, db, request, response, body.username, body.password, body.tenant)
    return SessionOut(
        username=user.username,
        role=user.role,
        tenant=db.get_one(Tenant, user.tenant_id).slug,
        second_factor_ok=False,
        csrf_token=session.csrf_token,
    )


@router.post("/session/totp", response_model=SessionOut, summary="Sign in, second factor (TOTP code)")
def post_totp(
    body: SecondFactor,
    request: Request,
    response: Response,
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> SessionOut:
    user, session = second_factor(p, db, request, body.code)
    remember_device(p, request, response, user)
    return SessionOut(
        username=user.username,
        role=user.role,
        tenant=db.get_one(Tenant, user.tenant_id).slug,
        second_factor_ok=True,
        csrf_token=session.csrf_token,
        must_change_password=user.must_change_password,
    )


def sign_out(p: Platform, db: Session, request: Request, who: Principal) -> None:
    """End what the request signed in with: the API token it carried (revoked, journaled), and the browser's
    session (deleted on the server, journaled)."""
    if who.token_id is not None:
        lifecycle.revoke_token(p, db, who.user, who.token_id, reason="signed out with it")
    cookie = request.cookies.get(service.SESSION_COOKIE)
    if cookie:
        service.close_session(db, cookie, p)


@router.delete(
    "/session", status_code=204, summary="Sign out: the session ends on the server; an API token used for it is revoked"
)
def delete_session(
    request: Request,
    response: Response,
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> None:
    sign_out(p, db, request, who)
    response.delete_cookie(service.SESSION_COOKIE, path="/")


@router.post("/tokens", status_code=201, summary="Issue an API token (for scripts) to the signed-in user")
def post_token(
    body: TokenIn,
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    if who.session is None:
        raise HTTPException(403, "API tokens are issued from a signed-in session (password and second factor)")
    token = service.issue_api_token(p, db, who.user, body.name, body.days, body.scopes)
    return {"token": token, "days": body.days, "scopes": sorted(s.value for s in body.scopes)}


@router.get("/tokens", response_model=list[TokenOut], summary="Your API tokens (never their values)")
def list_tokens(who: Principal = Depends(current_principal), db: Session = Depends(get_db)) -> list[TokenOut]:
    return [TokenOut.of(t) for t in lifecycle.tokens_of(db, who.user)]


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke one of your API tokens, now")
def revoke_token(
    token_id: TokenId,
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> TokenOut:
    return TokenOut.of(lifecycle.revoke_token(p, db, who.user, token_id))


@router.post("/account/password", status_code=204, summary="Change your password (your other sessions end)")
def change_password(
    body: PasswordIn,
    request: Request,
    response: Response,
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> None:
    if who.session is None:
        raise HTTPException(403, "a password is changed from a signed-in session, not with an API token")
    lifecycle.change_password(p, db, who.user, body.current, body.new, keep_session=who.session.id_hash)
    remember_device(p, request, response, who.user)


# --- the account page (French first, English) ------------------------------------------------------------

pages = APIRouter(include_in_schema=False)


def _account_page(request: Request, who: Principal, db: Session, status: int = 200, **extra):
    from temoin.web.templating import page

    return page(
        request,
        "account.html",
        status=status,
        who=who,
        tokens=lifecycle.tokens_of(db, who.user),
        max_days=service.TOKEN_MAX_DAYS,
        default_days=service.TOKEN_DEFAULT_DAYS,
        scopes=sorted(s.value for s in service.role_permissions(who.user)),
        **extra,
    )


@pages.get("/account")
def account_page(request: Request, who: Principal = Depends(current_principal), db: Session = Depends(get_db)):
    return _account_page(request, who, db)


@pages.post("/account/password")
def account_password(
    request: Request,
    current: str = Form(""),
    new: str = Form(""),
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
):
    # A plain function: FastAPI runs it in the thread pool, never querying the database in the event loop.
    from fastapi.responses import RedirectResponse

    try:
        lifecycle.change_password(
            p, db, who.user, current, new, keep_session=who.session.id_hash if who.session else None
        )
    except (WeakPassword, service.IdentityError) as exc:  # not a mapping: the account page again, the error shown on it
        return _account_page(request, who, db, status=problems.status_of(exc)[0], error=str(exc))
    response = RedirectResponse("/account", 303)
    remember_device(p, request, response, who.user)
    return response


@pages.post("/account/tokens")
def account_token(
    request: Request,
    name: str = Form(""),
    days: str = Form(""),
    scope: list[str] = Form([]),
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
):
    try:
        lifetime = int(days or service.TOKEN_DEFAULT_DAYS)
        scopes = [Permission(s) for s in scope]
        if not scopes:
            raise service.IdentityError("tick at least one scope: a token may do only what it is issued for")
        token = service.issue_api_token(p, db, who.user, name.strip()[:100] or "token", lifetime, scopes)
    except ValueError as exc:  # the form's own checks and the domain's (IdentityError is one): the page again
        return _account_page(request, who, db, status=422, error=str(exc))
    return _account_page(request, who, db, status=201, new_token=token)


@pages.post("/account/tokens/{token_id}/revoke")
def account_revoke(
    token_id: TokenId,
    request: Request,
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
):
    from fastapi.responses import RedirectResponse

    try:
        lifecycle.revoke_token(p, db, who.user, token_id)
    except lifecycle.UserNotFound as exc:  # not a mapping: the account page again, the error shown on it
        return _account_page(request, who, db, status=problems.status_of(exc)[0], error=str(exc))
    return RedirectResponse("/account", 303)
