"""What every `temoin` command shares: the consoles, opening the platform, who is at the keyboard, and the one
place where a domain error becomes a message and an exit code (never a traceback for a user's mistake).

Who is at the keyboard: command-line commands that act on content or on people authenticate the person, as the
web does, and the journal names that person, never a name merely typed. Either an API token in TEMOIN_API_TOKEN
(issued to the person from the web), or --by USERNAME followed by the password and the authenticator's code,
asked on the terminal (never as arguments: they would stay in the shell's history and the process list)."""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperGroup

from temoin import errors
from temoin.platform import Platform

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from temoin.identity.models import Tenant, User
    from temoin.law.access import Permission

console = Console()
err = Console(stderr=True)

# Exit statuses of every command (some commands document more of their own, e.g. `temoin verify`).
EXIT_FAILED = 1  # the platform refused or could not do it: something named is missing, not allowed, or broken
EXIT_USAGE = 2  # the command cannot run as given: bad input, missing configuration or keys

TOKEN_ENV = "TEMOIN_API_TOKEN"  # noqa: S105 - the variable's name, not a secret


def open_platform(init: bool = False, schema: Literal["upgrade", "start", "check"] | None = None) -> Platform:
    """The platform of TEMOIN_HOME; missing or unreadable keys, a bad TSA or witness setting and a database schema
    this version cannot run on (Platform.open) say what to do."""
    from temoin.errors import InvalidInput
    from temoin.evidence.timestamp import TimestampError
    from temoin.journal.witness import WitnessConfigError
    from temoin.keyring import KeyError_

    try:
        return Platform.open(init=init, schema=schema)
    except (KeyError_, TimestampError, WitnessConfigError, InvalidInput) as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)  # one line: the chmod to run, whole
        raise typer.Exit(EXIT_USAGE) from None


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


# --- errors ----------------------------------------------------------------------------------------


def _is_domain_error(exc: BaseException) -> bool:
    """Raised on purpose, with a message for the user: the domain errors (temoin.errors), the older classes the
    packages still define, and the bare LookupError of a name not found (no tenant 'x')."""
    return (
        isinstance(exc, errors.TemoinError)
        or type(exc) is LookupError
        or type(exc).__module__.split(".")[0] == "temoin"
    )


def user_error(exc: BaseException) -> tuple[str, int] | None:
    """The message and exit status for an error that is the user's or the environment's, else None (a bug:
    its traceback is shown)."""
    if isinstance(exc, SQLAlchemyError):
        found = errors.from_database(exc)  # a full or busy database
        return (found.message, EXIT_FAILED) if found is not None else None
    if _is_domain_error(exc):
        message = getattr(exc, "message", None)  # TemoinError's, and the older classes' that carry one
        if not isinstance(message, str):
            message = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
        return message or type(exc).__name__, EXIT_USAGE if isinstance(exc, errors.InvalidInput) else EXIT_FAILED
    if isinstance(exc, OSError) and exc.errno != errno.EPIPE:  # a file named on the command line, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", EXIT_FAILED
    return None


def fail(message: str, status: int = EXIT_FAILED) -> typer.Exit:
    """Say what went wrong on standard error, in one line; the caller raises the returned exit."""
    err.print(f"[red]{escape(message)}[/red]", soft_wrap=True)
    return typer.Exit(status)


class CommandGroup(TyperGroup):
    """The `temoin` command: a domain error raised by any subcommand is printed as one line, with its status."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click Context
        try:
            return super().invoke(ctx)
        except Exception as exc:
            found = user_error(exc)  # never typer's exits and usage errors: those are not the domain's
            if found is None:
                raise
            raise fail(*found) from None


# --- who is at the keyboard ----------------------------------------------------------------------


class NotAuthenticated(errors.Unauthenticated):
    """The person could not be authenticated; the message says what to do."""


def authenticate(
    p: Platform, db: Session, tenant: Tenant, username: str | None, permission: Permission | None = None
) -> User:
    """The authenticated user of `tenant`: by TEMOIN_API_TOKEN (whose scopes must include `permission`), else
    --by USERNAME + password + TOTP prompted."""
    from temoin.identity import service

    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        found = service.api_token_for(db, token)
        if found is None:
            raise NotAuthenticated(
                f"{TOKEN_ENV} is not a valid API token (unknown, revoked or expired): issue a new "
                "one from your account page, or unset it and give --by USERNAME"
            )
        user, row = found
        if permission is not None and permission not in service.token_scopes(user, row):
            raise NotAuthenticated(f"{TOKEN_ENV}'s scopes do not include {permission.value}: issue a token with it")
        if username and username != user.username:
            raise NotAuthenticated(
                f"{TOKEN_ENV} belongs to {user.username}, not {username}: the journal names the "
                "token's owner; drop --by or use your own token"
            )
    else:
        if not username:
            raise NotAuthenticated(
                f"say who you are: --by USERNAME (your password and authenticator code are then "
                f"asked), or set {TOKEN_ENV} to one of your API tokens"
            )
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
