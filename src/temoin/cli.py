"""The `temoin` command: serve, demo, administration, retention, journal and vault checks."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from temoin.camera.cli import camera_app
from temoin.supervision.cli import cctv_app
from temoin.evidence.cli import extract_command, verify_command
from temoin.keyring import KeyError_
from temoin.law.access import Role
from temoin.platform import Platform

app = typer.Typer(help="Témoin: body-worn cameras for municipal police.", no_args_is_help=True)
admin = typer.Typer(help="Tenants, users and cameras.", no_args_is_help=True)
tenant_cmd = typer.Typer(help="Tenants (communes, EPCI).", no_args_is_help=True)
user_cmd = typer.Typer(help="Users of a tenant.", no_args_is_help=True)
device_cmd = typer.Typer(help="Cameras of a tenant.", no_args_is_help=True)
retention_cmd = typer.Typer(help="Retention of recordings.", no_args_is_help=True)
journal_cmd = typer.Typer(help="The tamper-evident journal.", no_args_is_help=True)
vault_cmd = typer.Typer(help="The evidence vault's storage.", no_args_is_help=True)
app.add_typer(admin, name="admin")
admin.add_typer(tenant_cmd, name="tenant")
admin.add_typer(user_cmd, name="user")
admin.add_typer(device_cmd, name="device")
app.add_typer(retention_cmd, name="retention")
app.add_typer(journal_cmd, name="journal")
app.add_typer(vault_cmd, name="vault")
app.add_typer(camera_app, name="camera")
from temoin.rights.cli import rights_app  # noqa: E402
from temoin.reports.cli import report_app  # noqa: E402
app.add_typer(rights_app, name="rights")
app.add_typer(report_app, name="report")
app.add_typer(cctv_app, name="cctv")
from temoin.keys_cli import keys_app  # noqa: E402
app.add_typer(keys_app, name="keys")
from temoin.axis.cli import axis_app  # noqa: E402
app.add_typer(axis_app, name="axis")
app.command("verify")(verify_command)
app.command("extract")(extract_command)

console = Console()
err = Console(stderr=True)


def _open(init: bool = False) -> Platform:
    from temoin.evidence.timestamp import TimestampError
    from temoin.journal.witness import WitnessConfigError

    try:
        return Platform.open(init=init)
    except (KeyError_, TimestampError, WitnessConfigError) as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)  # one line: the chmod to run, whole
        raise typer.Exit(2) from None


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=False)


@app.command()
def init() -> None:
    """Create the data folder, the keys and the database schema (idempotent)."""
    from temoin.maintenance import certify_keys

    p = _open(init=True)
    certify_keys(p)
    console.print(f"Témoin ready in [bold]{p.settings.home}[/bold] ({p.engine.url.render_as_string()})")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000,
          certfile: Path | None = typer.Option(None, help="TLS certificate chain (PEM): serve HTTPS (and send HSTS)"),
          keyfile: Path | None = typer.Option(None, help="TLS private key (PEM) of --certfile")) -> None:
    """Run the platform: API, web pages, ingest, and the retention scheduler. Serve it over TLS with --certfile
    and --keyfile, or behind a reverse proxy that terminates TLS (docs/security.md)."""
    import uvicorn

    from temoin import private_files
    from temoin.web.app import create_app
    from temoin.web.hardening import access_log_config, transport_warning

    private_files.restrict_umask()
    if (certfile is None) != (keyfile is None):
        err.print("[red]give both --certfile and --keyfile (or neither, behind a reverse proxy that terminates "
                  "TLS)[/red]")
        raise typer.Exit(2)
    for path in (certfile, keyfile):
        if path is not None and not path.is_file():
            err.print(f"[red]{escape(str(path))}: no such file[/red]")
            raise typer.Exit(2)
    p = _open(init=True)
    found = private_files.too_open(p.settings)
    if found:
        err.print(f"[red]{escape(private_files.explain(found))}[/red]", soft_wrap=True)
        raise typer.Exit(2)
    warning = transport_warning(host, tls=certfile is not None)
    if warning:
        err.print(f"[bold red]{escape(warning)}[/bold red]", soft_wrap=True)
    # Cameras long-poll the platform (live acknowledgement, orders): a restart should not wait for them.
    # proxy_headers off: X-Forwarded-For is read by the app from TEMOIN_TRUSTED_PROXIES only (identity.addresses).
    uvicorn.run(create_app(p), host=host, port=port, log_level="info", timeout_graceful_shutdown=3,
                proxy_headers=False, log_config=access_log_config(),
                ssl_certfile=str(certfile) if certfile else None, ssl_keyfile=str(keyfile) if keyfile else None)


@app.command()
def demo(host: str = "127.0.0.1", port: int = 8000, recordings: int = typer.Option(4, min=0, max=50),
         cameras: int = typer.Option(6, min=0, max=8, help="simulated cameras on patrol (each the real agent)")) -> None:
    """Start the platform with a demo commune, users, sample recordings and a fleet of simulated cameras."""
    from temoin.demo.run import run_demo

    run_demo(host=host, port=port, recordings=recordings, console=console, cameras=cameras)


# --- administration -------------------------------------------------------------------------------

@tenant_cmd.command("create")
def tenant_create(slug: str, name: str, profile: str = "fr-police-municipale",
                  cameras: int = typer.Option(..., help="number of cameras the prefect authorised (R241-8)"),
                  territory: Path | None = typer.Option(None, help="GeoJSON file of the authorised territory")) -> None:
    """Create a tenant (a commune or an EPCI)."""
    import json

    from temoin.geo.territory import validate_territory
    from temoin.identity.service import IdentityError, create_tenant
    from temoin.law.profiles import UnknownProfile

    shape = None
    if territory:
        shape = json.loads(territory.read_text("utf-8"))
        validate_territory(shape)
    p = _open(init=True)
    with p.session() as db:
        try:
            create_tenant(p, db, slug=slug, name=name, profile=profile, authorised_cameras=cameras, territory=shape)
        except (IdentityError, UnknownProfile) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        db.commit()
    console.print(f"tenant [bold]{slug}[/bold] created with profile {profile}")


@tenant_cmd.command("territory")
def tenant_territory(slug: str, territory: Path = typer.Argument(..., help="GeoJSON file of the authorised territory")
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
    p = _open()
    with p.session() as db:
        try:
            set_territory(p, db, p.tenant(db, slug), shape)
        except (IdentityError, LookupError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        db.commit()
    console.print(f"territory of [bold]{slug}[/bold] set")


@tenant_cmd.command("settings")
def tenant_settings(slug: str, assignments: list[str] = typer.Argument(
        None, help="KEY=VALUE to change (an empty VALUE puts the default back); none: show them")) -> None:
    """Show or change a tenant's settings (CSU map, CCTV radius, PTZ auto-aim, escalation, rights deadline,
    public notice). Changes are validated together and journaled."""
    from temoin.identity.service import IdentityError, update_settings
    from temoin.identity.tenant_settings import TenantSettings, parse_assignments, settings_of

    p = _open()
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

    p = _open()
    table = Table("slug", "name", "profile", "authorised cameras")
    with p.session() as db:
        for t in db.scalars(select(Tenant).order_by(Tenant.slug)):
            table.add_row(t.slug, t.name, t.profile, str(t.authorised_cameras))
    console.print(table)


@user_cmd.command("create")
def user_create(tenant: str, username: str, display_name: str,
                role: Role = typer.Option(..., case_sensitive=False),
                agent_number: str | None = typer.Option(None, help="matricule, for wearing agents"),
                commune: list[str] | None = typer.Option(None, "--commune",
                                                         help="EPCI: an INSEE code whose recordings the user may "
                                                              "see (repeat; none: every commune)"),
                by: str | None = typer.Option(None, "--by", help="you, the mayor (or whoever may grant the role): "
                                                                "your password and code are asked")) -> None:
    """Create a user; prints a one-time password and the TOTP enrolment URI (shown once).

    Technical accounts, and a tenant's first mayor (the bootstrap), are created on the server as is; any other
    role is granted by an authenticated mayor (--by, or TEMOIN_API_TOKEN): duties apart (docs/security.md)."""
    from sqlalchemy import select

    from temoin.identity import grants
    from temoin.identity.cli_auth import NotAuthenticated, authenticate
    from temoin.identity.models import User
    from temoin.identity.service import IdentityError, actor_of, create_user
    from temoin.law.access import Permission

    p = _open()
    with p.session() as db:
        try:
            t = p.tenant(db, tenant)
            actor = None
            first_mayor = role == Role.MAYOR and db.scalar(select(User).where(
                User.tenant_id == t.id, User.role == Role.MAYOR.value, User.active.is_(True))) is None
            if role not in grants.TECHNICAL_ROLES and not first_mayor:
                granter = authenticate(p, db, t, by, Permission.ADMIN_USERS)
                grants.check_may_manage(Role(granter.role), t, role, "grant")
                actor = actor_of(granter)
            new = create_user(p, db, t, username=username, display_name=display_name, role=role,
                              agent_number=agent_number, communes=commune or None, by=actor)
        except NotAuthenticated as exc:
            err.print(f"[red]{exc}[/red]\n[dim]the role {role.value} is granted by the mayor: give --by MAYOR "
                      "(a tenant's first mayor is created without it)[/dim]")
            raise typer.Exit(2) from None
        except (IdentityError, LookupError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        db.commit()
    console.print(f"user [bold]{username}[/bold] ({role.value}) created\n  password: {new.password}\n"
                  f"  TOTP: {new.totp_uri}\n[dim]shown once: hand them over securely[/dim]")


@user_cmd.command("deactivate")
def user_deactivate(tenant: str, username: str, reason: str = typer.Option(..., help="why (journaled)"),
                    by: str | None = typer.Option(None, "--by", help="you: your password and code are asked")) -> None:
    """Deactivate an account: its sessions and API tokens end at once."""
    from temoin.identity import lifecycle
    from temoin.identity.cli_auth import NotAuthenticated, authenticate
    from temoin.identity.service import IdentityError
    from temoin.law.access import Permission

    p = _open()
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

    p = _open()
    with p.session() as db:
        user = db.scalar(select(User).join(Tenant, Tenant.id == User.tenant_id).where(
            User.username == username, Tenant.demo.is_(True)))
        if user is None:
            err.print("[red]only demo users' codes can be shown; real users use their authenticator[/red]")
            raise typer.Exit(1)
        console.print(current_totp(totp_secret_of(p, user)))


@device_cmd.command("code")
def device_code(tenant: str, label: str) -> None:
    """Issue a one-time enrolment code for a new camera (valid 24 h)."""
    from temoin.identity.devices import create_enrolment_code
    from temoin.journal.entry import Actor

    p = _open()
    with p.session() as db:
        code = create_enrolment_code(p, db, p.tenant(db, tenant), label=label, by=Actor.system("cli"))
    console.print(f"enrolment code for {label}: [bold]{code}[/bold] (valid 24 h, once)")


@device_cmd.command("list")
def device_list(tenant: str) -> None:
    from sqlalchemy import select

    from temoin.identity.models import Device

    p = _open()
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

    p = _open()
    with p.session() as db:
        device = db.get(Device, device_id)
        if device is None:
            err.print(f"[red]no camera {device_id}[/red]")
            raise typer.Exit(1)
        revoke(p, db, device, Actor.system("cli"))
    console.print(f"camera {device_id} revoked")


# --- retention, journal, vault --------------------------------------------------------------------

@retention_cmd.command("run")
def retention_run() -> None:
    """The server's periodic pass, once: delete the recordings whose retention is over and that no hold keeps,
    prune the journal past its retention, delete expired extraction packages, seal the journal."""
    from temoin.maintenance import run_pass

    p = _open()
    with _progress() as bar:
        task = bar.add_task("retention sweep", total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        done = run_pass(p, progress=step)
        result = done.sweep
        bar.update(task, completed=len(result.deleted), total=max(len(result.deleted), 1))
    console.print(f"{len(result.deleted)} recordings deleted ({result.blobs_removed} blobs), "
                  f"{result.held} kept by a hold, {result.orphans_removed} orphan blobs removed")
    console.print(f"{done.journal_pruned} journal entries pruned, {done.packages_purged} expired extraction packages "
                  f"deleted, {_sealing_line(done.sealing)}")


def _sealing_line(sealing) -> str:  # noqa: ANN001
    line = f"{sealing.chains} chains sealed"
    if sealing.witnessed is not None:
        line += f", {sealing.witnessed} checkpoints sent to the witness"
    if sealing.waiting:
        line += f" ([yellow]witness unreachable: {sealing.waiting} checkpoints kept to send later[/yellow])"
    return line


@journal_cmd.command("verify")
def journal_verify(
    witness_log: Path | None = typer.Option(None, "--witness-log", exists=True, dir_okay=False, readable=True,
                                            help="the witness's syslog file: every checkpoint it received must be "
                                                 "here, identical"),
    tsa_ca: Path | None = typer.Option(None, "--tsa-ca", help="the timestamp authority's CA certificates (PEM): "
                                                              "verify the seals' RFC 3161 timestamps"),
) -> None:
    """Verify both sinks of every chain, and that they agree; say what the last seal covers and what is
    not sealed yet, and when the seals were timestamped. Only reads. Exit 1 and name each problem if not intact."""
    from temoin.db import utcnow
    from temoin.journal.verify import verify_all, verify_all_seal_timestamps
    from temoin.journal.witness import read_witness_log

    bundle = None
    if tsa_ca is not None:
        try:
            bundle = tsa_ca.read_bytes()
        except OSError as exc:
            err.print(f"[red]cannot read the TSA CA bundle {escape(str(tsa_ca))}: {exc.strerror}[/red]")
            raise typer.Exit(2) from None
    p = _open()
    witness = read_witness_log(witness_log, [k.public_key for k in p.keyring.trusted]) if witness_log else None
    now = utcnow()
    with p.session() as db, console.status("verifying the journal…"):
        result = verify_all(db, p.journal.sink, p.keyring.trusted, witness=witness,
                            seal_interval_s=p.settings.journal_seal_interval_s, now=now)
        stamps = verify_all_seal_timestamps(db, p.journal.sink, p.keyring.trusted, bundle,
                                            sorted({r.chain for r in result.reports}), result.checkpoints)
    table = Table("chain", "sink", "entries", "last entry", "last seal covers", "unsealed tail", "problems")
    for r in result.reports:
        seal = (f"{r.last_seal.seq} ({r.last_seal.at[:19].replace('T', ' ')} UTC)" if r.last_seal else "none")
        tail = "-"
        if r.unsealed:
            tail = f"{r.unsealed} entries"
            if r.unsealed_since is not None:
                tail += f", oldest {_age((now - r.unsealed_since).total_seconds())} old"
        table.add_row(r.chain, r.sink, str(r.entries), str(r.last_seq), seal, tail, str(len(r.problems)))
    console.print(table)
    if witness is not None:
        console.print(f"witness log {witness_log}: {sum(len(c) for c in witness.chains.values())} checkpoints "
                      f"of {len(witness.chains)} chains compared")
    for warning in result.warnings:
        console.print(f"[yellow]{escape(warning)}[/yellow]")
    for stamp in stamps:
        console.print(escape(stamp.summary()), soft_wrap=True)
    problems = result.problems + [problem for stamp in stamps for problem in stamp.problems]
    if not problems:
        console.print("[green]journal intact[/green]")
        return
    for problem in problems:
        console.print(f"[red]{escape(str(problem))}[/red]", soft_wrap=True)
    raise typer.Exit(1)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{max(0, seconds):.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


@journal_cmd.command("seal")
def journal_seal() -> None:
    """Sign the current head of every chain that moved, and send the witness its checkpoints (the server
    does it every TEMOIN_JOURNAL_SEAL_INTERVAL_S)."""
    from temoin.maintenance import seal_journal

    p = _open()
    console.print(_sealing_line(seal_journal(p)))


@journal_cmd.command("repair")
def journal_repair() -> None:
    """Bring the journal file level with the database after a crash or a full disk: remove an interrupted
    last line, append the entries and checkpoints the file lacks at its end if they carry on exactly from
    it (otherwise nothing is copied, and why is said). Journaled. `temoin serve` does it at start-up."""
    from temoin.journal.repair import repair
    from temoin.journal.sinks import JournalWriteError

    p = _open()
    with p.session() as db:
        try:
            results = repair(db, p.journal, trigger="temoin journal repair")
        except JournalWriteError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
    refused = False
    for r in results:
        for cut in r.interrupted:
            console.print(f"{r.chain}: interrupted write at byte {cut['at']} of {cut['file']} removed "
                          f"({cut['bytes']} bytes)")
        if r.gaps_filled:
            console.print(f"{r.chain}: {r.gaps_filled} entries missing in the middle of the file put back")
        if r.appended:
            console.print(f"{r.chain}: {r.appended} entries appended to the file from entry {r.from_seq}")
        if r.checkpoints_appended:
            console.print(f"{r.chain}: {r.checkpoints_appended} checkpoints appended to the file")
        if r.refused:
            refused = True
            err.print(f"[red]{r.chain}: {escape(r.refused)}[/red]")
    if not any(r.changed for r in results) and not refused:
        console.print("nothing to repair: the file is level with the database")
    if refused:
        raise typer.Exit(1)


@journal_cmd.command("prune")
def journal_prune() -> None:
    """Remove entries older than each tenant's journal retention (three years), behind a signed checkpoint."""
    from sqlalchemy import select

    from temoin.db import utcnow
    from temoin.identity.models import Tenant
    from temoin.journal.checkpoints import prune
    from temoin.law.profiles import get_profile

    p = _open()
    with p.session() as db:
        for t in db.scalars(select(Tenant)).all():
            cutoff = get_profile(t.profile).journal_cutoff(utcnow())
            console.print(f"{t.slug}: {prune(db, p.journal.sink, p.keyring, t.slug, cutoff)} entries pruned")


@vault_cmd.command("scrub")
def vault_scrub() -> None:
    """Decrypt and re-hash every stored segment against its signed manifest; report corruption."""
    from temoin.vault.scrub import scrub

    p = _open()
    with p.session() as db, _progress() as bar:
        task = bar.add_task("scrubbing recordings", total=None)
        result = scrub(p, db, progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"{result.recordings} recordings, {result.segments} segments, {result.bytes} bytes checked")
    if result.lost:
        console.print(f"{result.lost} segment(s) lost at the camera, declared in their signed receipts: never in "
                      "the vault, not checked (not corruption)")
    if result.ok:
        console.print("[green]no corruption[/green]")
        return
    for problem in result.problems:
        console.print(f"[red]{escape(str(problem))}[/red]")
    raise typer.Exit(1)


def main() -> None:
    from temoin.private_files import restrict_umask
    from temoin.settings import InvalidSettings

    restrict_umask()  # every file and folder the platform creates is private to its user (docs/security.md)
    try:
        app(prog_name="temoin")
    except InvalidSettings as exc:  # a bad TEMOIN_* variable, whatever the command: say which, not a traceback
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.exit(main())
