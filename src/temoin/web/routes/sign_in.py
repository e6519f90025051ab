"""Sign-in pages: password, then the TOTP code (with the authenticator to enrol at a first sign-in), the
language, sign-out; `/` sends each user to their home page."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from temoin.identity import service
from temoin.identity.models import Tenant
from temoin.identity.secrets import totp_uri
from temoin.platform import Platform
from temoin.web import problems
from temoin.web.deps import Principal, current_principal, get_db, get_platform
from temoin.web.i18n import LANGS, gettext, lang_of
from temoin.web.pages import home_for
from temoin.web.routes.session import remember_device, second_factor, sign_in, sign_out
from temoin.web.templating import page

pages = APIRouter(include_in_schema=False)


@pages.get("/")
def root(request: Request, db: Session = Depends(get_db)) -> Response:
    try:
        who = current_principal(request, db, None)
    except HTTPException:
        return RedirectResponse("/login", 303)
    home = home_for(who)
    if home == "/":
        return page(request, "home.html", who=who)
    return RedirectResponse(home, 303)


@pages.get("/lang/{code}")
def set_lang(code: str, request: Request) -> Response:
    back = request.headers.get("referer") or "/"
    response = RedirectResponse(back if back.startswith(str(request.base_url)) else "/", 303)
    if code in LANGS:
        response.set_cookie("lang", code, samesite="lax", max_age=365 * 86400)
    return response


_BACK_TO = re.compile(r"/[A-Za-z0-9_\-/]*")  # where a page sends one to sign in again: a path of this site only


def _back_to(next_: str) -> str:
    return next_ if _BACK_TO.fullmatch(next_) and not next_.startswith("//") else ""


def _totp_url(next_: str) -> str:
    return f"/login/totp?{urlencode({'next': next_})}" if next_ else "/login/totp"


@pages.get("/login")
def login_form(request: Request, next_: str = Query("", alias="next")) -> HTMLResponse:
    return page(request, "login.html", next=_back_to(next_))


@pages.post("/login")
def login(
    request: Request,
    username: str = Form(max_length=64),
    password: str = Form(max_length=256),
    next_: str = Form("", alias="next", max_length=200),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    next_ = _back_to(next_)
    response = RedirectResponse(_totp_url(next_), 303)
    try:
        sign_in(p, db, request, response, username, password)
    except service.IdentityError as exc:  # not a mapping: the form again, in the visitor's language
        lang = lang_of(request)
        if isinstance(exc, service.Throttled):
            error = gettext(lang, "Too many failed sign-ins: try again in {n} s.").format(n=exc.retry_after)
        else:
            error = gettext(lang, "Unknown user or wrong password.")
        return page(request, "login.html", status=problems.status_of(exc)[0], error=error, next=next_)
    return response


def totp_qr_svg(uri: str) -> Markup:
    """The otpauth URI as a QR code in inline SVG (paths only: no script, no style, allowed by the CSP)."""
    import segno

    svg = segno.make(uri, error="m").svg_inline(scale=5, border=4, dark="#000", light="#fff", omitsize=True)
    return Markup(svg)  # noqa: S704 - segno's SVG paths, made here from our own URI


def grouped(secret: str) -> str:
    """The secret by groups of 4 characters, easier to type into an authenticator app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _enrolment(p: Platform, db: Session, request: Request) -> dict | None:
    """The authenticator to enrol, shown at the second step of a first sign-in only: the password was set by
    someone else (created or reset) and no code of this secret was ever accepted; from the first code on it is
    never shown again."""
    cookie = request.cookies.get(service.SESSION_COOKIE)
    found = service.session_for(db, cookie) if cookie else None
    if found is None:
        return None
    session, user = found
    if (
        session.second_factor_ok
        or not user.must_change_password
        or user.totp_last_step != 0
        or user.totp_secret is None
    ):
        return None
    secret = service.totp_secret_of(p, user)
    return {"qr": totp_qr_svg(totp_uri(secret, user.username)), "secret": grouped(secret)}


@pages.get("/login/totp")
def totp_form(
    request: Request,
    next_: str = Query("", alias="next"),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> HTMLResponse:
    return page(request, "totp.html", next=_back_to(next_), enrolment=_enrolment(p, db, request))


@pages.post("/login/totp")
def totp(
    request: Request,
    code: str = Form(max_length=12),
    next_: str = Form("", alias="next", max_length=200),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    next_ = _back_to(next_)
    cookie = request.cookies.get(service.SESSION_COOKIE)
    signed_in = cookie is not None and service.session_for(db, cookie) is not None
    try:
        user, session = second_factor(p, db, request, code)
    except (HTTPException, service.IdentityError) as exc:  # not a mapping: the form again, in the visitor's language
        lang = lang_of(request)
        return page(
            request,
            "totp.html",
            status=exc.status_code if isinstance(exc, HTTPException) else problems.status_of(exc)[0],
            error=gettext(lang, "Wrong or already used code: type the current code of your authenticator.")
            if signed_in
            else gettext(lang, "Sign in with your password first."),
            next=next_,
            enrolment=_enrolment(p, db, request),
        )
    home = (
        "/account"
        if user.must_change_password
        else next_ or home_for(Principal(user, db.get_one(Tenant, user.tenant_id), session))
    )
    response = RedirectResponse(home, 303)
    remember_device(p, request, response, user)
    return response


@pages.post("/logout")
def logout(
    request: Request,
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    sign_out(p, db, request, who)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(service.SESSION_COOKIE, path="/")
    return response
