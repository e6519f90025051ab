"""Sign-in (password, then TOTP), sign-out and API tokens, for scripts and the web pages alike."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from temoin.identity import service
from temoin.identity.models import Tenant
from temoin.platform import Platform
from temoin.web.deps import Principal, current_principal, get_db, get_platform

router = APIRouter(prefix="/api/v1", tags=["session"])


class SignIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class SecondFactor(BaseModel):
    code: str = Field(max_length=12)


class SessionOut(BaseModel):
    username: str
    role: str
    tenant: str
    second_factor_ok: bool
    csrf_token: str


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    days: int = Field(default=30, ge=1, le=365)


def set_session_cookie(p: Platform, response: Response, token: str) -> None:
    response.set_cookie(service.SESSION_COOKIE, token, httponly=True, samesite="strict",
                        secure=p.settings.secure_cookies, max_age=p.settings.session_hours * 3600, path="/")


def sign_in(p: Platform, db: Session, request: Request, response: Response, username: str, password: str):  # noqa: ANN201
    address = request.client.host if request.client else "unknown"
    try:
        user = service.check_password(p, db, username, password, address)
    except service.Throttled as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except service.IdentityError as exc:
        raise HTTPException(401, str(exc)) from None
    token, session = service.open_session(p, db, user)
    set_session_cookie(p, response, token)
    return user, session


def second_factor(p: Platform, db: Session, request: Request, code: str):  # noqa: ANN201
    cookie = request.cookies.get(service.SESSION_COOKIE)
    found = service.session_for(db, cookie) if cookie else None
    if found is None:
        raise HTTPException(401, "sign in with your password first")
    session, user = found
    try:
        service.check_second_factor(p, db, user, code)
    except service.Throttled as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except service.IdentityError as exc:
        raise HTTPException(401, str(exc)) from None
    session.second_factor_ok = True
    db.commit()
    return user, session


@router.post("/session", response_model=SessionOut, summary="Sign in, first factor (password)")
def post_session(body: SignIn, request: Request, response: Response, db: Session = Depends(get_db),
                 p: Platform = Depends(get_platform)) -> SessionOut:
    user, session = sign_in(p, db, request, response, body.username, body.password)
    return SessionOut(username=user.username, role=user.role, tenant=db.get(Tenant, user.tenant_id).slug,
                      second_factor_ok=False, csrf_token=session.csrf_token)


@router.post("/session/totp", response_model=SessionOut, summary="Sign in, second factor (TOTP code)")
def post_totp(body: SecondFactor, request: Request, db: Session = Depends(get_db),
              p: Platform = Depends(get_platform)) -> SessionOut:
    user, session = second_factor(p, db, request, body.code)
    return SessionOut(username=user.username, role=user.role, tenant=db.get(Tenant, user.tenant_id).slug,
                      second_factor_ok=True, csrf_token=session.csrf_token)


@router.delete("/session", status_code=204, summary="Sign out")
def delete_session(request: Request, response: Response, who: Principal = Depends(current_principal),
                   db: Session = Depends(get_db)) -> None:
    cookie = request.cookies.get(service.SESSION_COOKIE)
    if cookie:
        service.close_session(db, cookie)
    response.delete_cookie(service.SESSION_COOKIE, path="/")


@router.post("/tokens", status_code=201, summary="Issue an API token (for scripts) to the signed-in user")
def post_token(body: TokenIn, who: Principal = Depends(current_principal), db: Session = Depends(get_db),
               p: Platform = Depends(get_platform)) -> dict:
    if who.session is None:
        raise HTTPException(403, "API tokens are issued from a signed-in session (password and second factor)")
    return {"token": service.issue_api_token(p, db, who.user, body.name, body.days), "days": body.days}
