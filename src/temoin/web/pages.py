"""What every page shares: the guard that sends an anonymous visitor to the sign-in page, and where a
signed-in user lands."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from temoin.errors import Forbidden, Unauthenticated
from temoin.identity import service
from temoin.law.access import Permission, allows
from temoin.web.deps import Guard, Principal, csrf_sent, current_principal, get_db


class SignInRequired(Unauthenticated):
    """A page asked anonymously: the app sends the visitor to the sign-in page."""


class PasswordChangeRequired(Forbidden):
    """A page asked before the user chose their own password (created or reset by someone else)."""


class PageRequire(Guard):
    """Like Require, for pages: an anonymous visitor is sent to the sign-in page."""

    def __call__(
        self,
        request: Request,
        db: Session = Depends(get_db),
        csrf: str | None = Depends(csrf_sent),
    ) -> Principal:
        try:
            principal = current_principal(request, db, csrf)
        except HTTPException as exc:
            if exc.status_code == 401:
                raise SignInRequired() from None
            if exc.status_code == 403 and _must_change_password(request, db):
                raise PasswordChangeRequired() from None
            raise
        return self.check(principal)


def _must_change_password(request: Request, db: Session) -> bool:
    cookie = request.cookies.get(service.SESSION_COOKIE)
    found = service.session_for(db, cookie) if cookie else None
    return found is not None and found[0].second_factor_ok and found[1].must_change_password


def home_for(who: Principal) -> str:
    if allows(who.role, Permission.RECORDINGS_LIST):
        return "/recordings"
    if allows(who.role, Permission.JOURNAL_READ):
        return "/journal"
    if allows(who.role, Permission.LIVE_VIEW):
        return "/live"  # the CSU operator: the live dashboard (alerts, feeds, acknowledgement)
    return "/"  # no page for this role yet: a signed-in home with the header (sign-out) and the API docs
