"""Who is at the keyboard: command-line commands that act on content or on people authenticate the person, as the
web does, and the journal names that person, never a name merely typed.

Either an API token in TEMOIN_API_TOKEN (issued to the person from the web), or --by USERNAME followed by the
password and the authenticator's code, asked on the terminal (never as arguments: they would stay in the shell's
history and the process list)."""

from __future__ import annotations

import os

import typer
from sqlalchemy.orm import Session

from temoin import errors
from temoin.identity import service
from temoin.identity.models import Tenant, User
from temoin.law.access import Permission
from temoin.platform import Platform

TOKEN_ENV = "TEMOIN_API_TOKEN"


class NotAuthenticated(errors.Unauthenticated):
    """The person could not be authenticated; the message says what to do."""


def authenticate(p: Platform, db: Session, tenant: Tenant, username: str | None,
                 permission: Permission | None = None) -> User:
    """The authenticated user of `tenant`: by TEMOIN_API_TOKEN (whose scopes must include `permission`), else
    --by USERNAME + password + TOTP prompted."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        found = service.api_token_for(db, token)
        if found is None:
            raise NotAuthenticated(f"{TOKEN_ENV} is not a valid API token (unknown, revoked or expired): issue a new "
                                   "one from your account page, or unset it and give --by USERNAME")
        user, row = found
        if permission is not None and permission not in service.token_scopes(user, row):
            raise NotAuthenticated(f"{TOKEN_ENV}'s scopes do not include {permission.value}: issue a token with it")
        if username and username != user.username:
            raise NotAuthenticated(f"{TOKEN_ENV} belongs to {user.username}, not {username}: the journal names the "
                                   "token's owner; drop --by or use your own token")
    else:
        if not username:
            raise NotAuthenticated(f"say who you are: --by USERNAME (your password and authenticator code are then "
                                   f"asked), or set {TOKEN_ENV} to one of your API tokens")
        password = typer.prompt(f"password of {username}", hide_input=True, err=True)
        try:
            user = service.check_password(p, db, username, password, "cli", tenant=tenant.slug)
            code = typer.prompt("authenticator code (6 digits)", err=True)
            service.check_second_factor(p, db, user, code.strip())
        except service.IdentityError as exc:
            raise NotAuthenticated(str(exc)) from None
    if user.tenant_id != tenant.id:
        raise NotAuthenticated(f"{user.username} is not a user of {tenant.slug}")
    return user
