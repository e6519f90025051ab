"""`temoin admin`: tenants, users and cameras."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from temoin.cli.context import NotAuthenticated, authenticate, console, err, open_platform
from temoin.law.access import Role

admin_app = typer.Typer(help="Tenants, users and cameras.", no_args_is_help=True)
tenant_cmd = typer.Typer(help="Tenants (communes, EPCI).", no_args_is_help=True)
user_cmd = typer.Typer(help="Users of a tenant.", no_args_is_help=True)
device_cmd = typer.Typer(help="Cameras of a tenant.", no_args_is_help=True)
admin_app.add_typer(tenant_cmd, name="tenant")
admin_app.add_typer(user_cmd, name="user")
admin_app.add_typer(device_cmd, name="device")


@tenant_cmd.command("create")
def tenant_create(
    slug: str,
    name: str,
    profile: str = "fr-police-municipale",
    cameras: int = typer.Option(..., help="number of cameras the prefect authorised (R241-8)"),
    territory: Path | None = typer.Option(None, help="GeoJSON file of the authorised territory"),
) -> None:
    """Create a tenant (a commune or an EPCI)."""
    import json

    from temoin.geo.territory import validate_territory
    from temoin.identity.service import IdentityError, create_tenant
    from temoin.law.profiles import UnknownProfile

    shape = None
    if territory:
        shape = json.loads(territory.read_text("utf-8"))
        validate_territory(shape)
    p = open_platform(init=True)
    with p.session() as db:
        try:
            create_tenant(p, db, slug=slug, name=name, profile=profile, authorised_cameras=cameras, territory=shape)
        except (IdentityError, UnknownProfile) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        db.commit()
    console.print(f"tenant [bold]{slug}[/bold] created with profile {profile}")


@tenant_cmd.command("territory")
def tenant_territory(
    slug: str, territory: Path = typer.Argument(..., help="GeoJSON file of the authorised territory")
) -> None:
    """Set a tenant's authorised territory (R241-8 II): recordings that arrive from then on are checked against it
    (before, each was flagged 'territory unknown'). Journaled."""
    import json

    from temoin.identity.service import IdentityError, set_territory

    try:
        shape = json.loads(territory.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        err.print(f"[red]cannot read {territory} as GeoJSON: {exc}[/red]")
        raise typer.Exit(1) from None
    p = open_platform()
    with p.session() as db:
        try:
            set_territory(p, db, p.tenant(db, slug), shape)
        except (IdentityError, LookupError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        db.commit()
    console.print(f"territory of [bold]{slug}[/bold] set")


@tenant_cmd.command("streets")
def tenant_streets(
    slug: str,
    streets: Path = typer.Argument(
        ..., help="GeoJSON file of the streets: LineString features named by a 'name' (or 'nom') property"
    ),
) -> None:
    """Load a tenant's streets (replacing any before): the offline basemap draws them with their names, positions
    are shown by the nearest street, the rights form finds a street by name. See docs/maps.md. Journaled."""
    import json

    from temoin.geo.streets import StreetsInvalid
    from temoin.web.basemap import load_streets

    try:
        geojson = json.loads(streets.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        err.print(f"[red]cannot read {streets} as GeoJSON: {exc}[/red]")
        raise typer.Exit(1) from None
    p = open_platform()
    with p.session() as db:
        try:
            count = load_streets(p, db, p.tenant(db, slug), geojson)
        except (StreetsInvalid, LookupError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        db.commit()
    console.print(f"{count} streets of [bold]{slug}[/bold] loaded")


@tenant_cmd.command("settings")
def tenant_settings(
    slug: str,
    assignments: list[str] = typer.Argument(
        None, help="KEY=VALUE to change (an empty VALUE puts the default back); none: show them"
    ),
) -> None:
    """Show or change a tenant's settings (CSU map, CCTV radius, PTZ auto-aim, escalation, rights deadline,
    public notice). Changes are validated together and journaled."""
    from temoin.identity.service import IdentityError, update_settings
    from temoin.identity.tenant_settings import TenantSettings, parse_assignments, settings_of

    p = open_platform()
    with p.session() as db:
        try:
            tenant = p.tenant(db, slug)
        except LookupError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        if assignments:
            try:
                update_settings(p, db, tenant, parse_assignments(assignments))  # pydantic types the values
            except (ValueError, IdentityError) as exc:
                err.print(f"[red]{exc}[/red]")
                raise typer.Exit(1) from None
            db.commit()
        current = settings_of(tenant)
        table = Table("setting", "value", "default")
        for key, spec in TenantSettings.model_fields.items():
            table.add_row(key, str(getattr(current, key)), str(spec.default))
    console.print(table)


@tenant_cmd.command("list")
def tenant_list() -> None:
    from sqlalchemy import select

    from temoin.identity.models import Tenant

    p = open_platform()
    table = Table("slug", "name", "profile", "authorised cameras")
    with p.session() as db:
        for t in db.scalars(select(Tenant).order_by(Tenant.slug)):
            table.add_row(t.slug, t.name, t.profile, str(t.authorised_cameras))
    console.print(table)


@user_cmd.command("create")
def user_create(
    tenant: str,
    username: str,
    display_name: str,
    role: Role = typer.Option(..., case_sensitive=False),
    agent_number: str | None = typer.Option(None, help="matricule, for wearing agents"),
    commune: list[str] | None = typer.Option(
        None, "--commune", help="EPCI: an INSEE code whose recordings the user may see (repeat; none: every commune)"
    ),
    by: str | None = typer.Option(
        None, "--by", help="you, the mayor (or whoever may grant the role): your password and code are asked"
    ),
) -> None:
    """Create a user; prints a one-time password and the TOTP enrolment URI (shown once).

    Technical accounts, and a tenant's first mayor (the bootstrap), are created on the server as is; any other
    role is granted by an authenticated mayor (--by, or TEMOIN_API_TOKEN): duties apart (docs/security.md)."""
    from sqlalchemy import select

    from temoin.identity import grants
    from temoin.identity.models import User
    from temoin.identity.service import IdentityError, actor_of, create_user
    from temoin.law.access import Permission

    p = open_platform()
    with p.session() as db:
        try:
            t = p.tenant(db, tenant)
            actor = None
            first_mayor = (
                role == Role.MAYOR
                and db.scalar(
                    select(User).where(User.tenant_id == t.id, User.role == Role.MAYOR.value, User.active.is_(True))
                )
                is None
            )
            if role not in grants.TECHNICAL_ROLES and not first_mayor:
                granter = authenticate(p, db, t, by, Permission.ADMIN_USERS)
                grants.check_may_manage(Role(granter.role), t, role, "grant")
                actor = actor_of(granter)
            new = create_user(
                p,
                db,
                t,
                username=username,
                display_name=display_name,
                role=role,
                agent_number=agent_number,
                communes=commune or None,
                by=actor,
            )
            new.user.must_change_password = True  # the one-time password is seen by whoever runs this
        except NotAuthenticated as exc:
            err.print(
                f"[red]{exc}[/red]\n[dim]the role {role.value} is granted by the mayor: give --by MAYOR "
                "(a tenant's first mayor is created without it)[/dim]"
            )
            raise typer.Exit(2) from None
        except (IdentityError, LookupError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        db.commit()
    console.print(
        f"user [bold]{username}[/bold] ({role.value}) created\n  password: {new.password}\n"
        f"  TOTP: {new.totp_uri}\n[dim]shown once: hand them over securely[/dim]"
    )


@user_cmd.command("deactivate")
def user_deactivate(
    tenant: str,
    username: str,
    reason: str = typer.Option(..., help="why (journaled)"),
    by: str | None = typer.Option(None, "--by", help="you: your password and code are asked"),
) -> None:
    """Deactivate an account: its sessions and API tokens end at once."""
    from temoin.identity import lifecycle
    from temoin.identity.service import IdentityError
    from temoin.law.access import Permission

    p = open_platform()
    with p.session() as db:
        try:
            t = p.tenant(db, tenant)
            actor = authenticate(p, db, t, by, Permission.ADMIN_USERS)
            ended = lifecycle.set_active(p, db, actor, t, lifecycle.user_of_tenant(db, t, username), False, reason)
        except NotAuthenticated as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        except (IdentityError, LookupError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
    console.print(f"{username} deactivated: {ended.sessions} session(s) ended, {ended.tokens} token(s) revoked")


@user_cmd.command("totp")
def user_totp(username: str) -> None:
    """Print a demo user's current TOTP code (demo tenants only)."""
    from sqlalchemy import select

    from temoin.identity.models import Tenant, User
    from temoin.identity.secrets import current_totp
    from temoin.identity.service import totp_secret_of

    p = open_platform()
    with p.session() as db:
        user = db.scalar(
            select(User)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(User.username == username, Tenant.demo.is_(True))
        )
        if user is None:
            err.print("[red]only demo users' codes can be shown; real users use their authenticator[/red]")
            raise typer.Exit(1)
        console.print(current_totp(totp_secret_of(p, user)))


@device_cmd.command("code")
def device_code(tenant: str, label: str) -> None:
    """Issue a one-time enrolment code for a new camera (valid 24 h)."""
    from temoin.identity.devices import create_enrolment_code
    from temoin.journal.entry import Actor

    p = open_platform()
    with p.session() as db:
        code = create_enrolment_code(p, db, p.tenant(db, tenant), label=label, by=Actor.system("cli"))
    console.print(f"enrolment code for {label}: [bold]{code}[/bold] (valid 24 h, once)")


@device_cmd.command("list")
def device_list(tenant: str) -> None:
    from sqlalchemy import select

    from temoin.identity.models import Device

    p = open_platform()
    table = Table("id", "serial", "label", "status", "enrolled")
    with p.session() as db:
        t = p.tenant(db, tenant)
        for d in db.scalars(select(Device).where(Device.tenant_id == t.id).order_by(Device.serial)):
            table.add_row(d.id, d.serial, d.label, d.status, d.enrolled_at.isoformat(timespec="seconds"))
    console.print(table)


@device_cmd.command("revoke")
def device_revoke(device_id: str) -> None:
    from temoin.identity.devices import revoke
    from temoin.identity.models import Device
    from temoin.journal.entry import Actor

    p = open_platform()
    with p.session() as db:
        device = db.get(Device, device_id)
        if device is None:
            err.print(f"[red]no camera {device_id}[/red]")
            raise typer.Exit(1)
        revoke(p, db, device, Actor.system("cli"))
    console.print(f"camera {device_id} revoked")
