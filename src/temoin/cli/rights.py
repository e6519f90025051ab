"""`temoin rights`: the register of citizens' requests from the command line."""

from __future__ import annotations

from datetime import date

import typer
from rich.table import Table

from temoin.cli.context import NotAuthenticated, authenticate, console, err, open_platform
from temoin.rights.models import RequestKind, RequestStatus

rights_app = typer.Typer(
    help="Citizens' rights requests (access, erasure, limitation, rectification).", no_args_is_help=True
)


def _user(p, db, tenant, username: str | None):
    """The authenticated person (password + code, or TEMOIN_API_TOKEN), entitled to the register."""
    from temoin.law.access import Permission, Role, allows

    try:
        user = authenticate(p, db, tenant, username)
    except NotAuthenticated as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if not allows(Role(user.role), Permission.RIGHTS_MANAGE):
        err.print(
            f"[red]{user.username} ({user.role}) may not handle rights requests (RIGHTS_MANAGE: mayor, chief, "
            "DPO)[/red]"
        )
        raise typer.Exit(2)
    return user


@rights_app.command("list")
def list_requests(
    tenant: str,
    status: RequestStatus | None = None,
    overdue: bool = typer.Option(False, "--overdue", help="only those past their deadline"),
    commune: str | None = typer.Option(None, "--commune", help="in an EPCI: one commune's requests (INSEE code)"),
) -> None:
    """The register of TENANT, nearest deadline first."""
    from temoin.rights import register

    p = open_platform()
    with p.session() as db:
        t = p.tenant(db, tenant)
        # The server's operator: ids, kinds and dates only (no person's data), the whole register.
        found = register.list_requests(db, t, None, status=status, overdue=True if overdue else None, commune=commune)
        table = Table("#", "kind", "received", "deadline", "status", "overdue", "commune")
        for r in found:
            late = register.is_overdue(r)
            table.add_row(
                str(r.id),
                r.kind,
                r.received_on.isoformat(),
                r.deadline.isoformat(),
                r.status,
                "[red]yes[/red]" if late else "",
                r.commune or "",
            )
        console.print(table)


@rights_app.command("create")
def create(
    tenant: str,
    kind: RequestKind = typer.Option(..., help="access, erasure, limitation, ..."),
    description: str = typer.Option(..., help="the person: what they wore, where and when"),
    contact: str = typer.Option(..., help="where to send the answer"),
    received: str | None = typer.Option(None, help="day of receipt, YYYY-MM-DD (default today)"),
    commune: str | None = typer.Option(None, "--commune", help="in an EPCI: the requester's commune (INSEE code)"),
    by: str | None = typer.Option(None, help="your username (password and code are asked); or set TEMOIN_API_TOKEN"),
) -> None:
    """Register a request for TENANT; prints its id and deadline."""
    from temoin.rights import register

    p = open_platform()
    with p.session() as db:
        t = p.tenant(db, tenant)
        try:
            received_on = date.fromisoformat(received) if received else None
            req = register.create_request(
                p,
                db,
                _user(p, db, t, by),
                t,
                register.NewRequest(
                    kind=kind, person_description=description, contact=contact, received_on=received_on, commune=commune
                ),
            )
        except (ValueError, register.RightsError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        console.print(f"request {req.id} registered; answer due by {req.deadline.isoformat()}")
