"""`temoin axis`: the connection file for a commune's Axis Body Worn Manager, and its revocation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.markup import escape

from temoin.cli.context import err, open_platform

axis_app = typer.Typer(
    help="Axis Body Worn cameras: Témoin as their content destination (docs/axis.md).", no_args_is_help=True
)


@axis_app.command("connection-file")
def connection_file(
    tenant: str = typer.Argument(..., help="the tenant (commune) whose cameras connect"),
    url: list[str] = typer.Option(
        ..., "--url", help="address of Témoin the docking stations reach (https://host[:port]); repeat for several"
    ),
    out: Path | None = typer.Option(None, "--out", help="write the file here (mode 0600) instead of standard output"),
    certificate: list[Path] = typer.Option(
        [], "--certificate", help="PEM certificate of Témoin's HTTPS server, for the docking stations to check it"
    ),
    encryption: bool = typer.Option(True, help="ask the cameras to encrypt clips for Témoin (WantEncryption)"),
    container_type: str = typer.Option("mp4", help="clip file format the cameras send: mp4 or mkv"),
) -> None:
    """Issue the connection file (JSON) to import into AXIS Body Worn Manager. A new file revokes the previous one."""
    from temoin.axis.connection import AxisConnectionError, issue
    from temoin.journal.entry import Actor

    p = open_platform(init=True)
    try:
        pems = [c.read_bytes() for c in certificate]
    except OSError as exc:
        err.print(f"[red]cannot read the certificate: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    with p.session() as db:
        try:
            issued = issue(
                p,
                db,
                p.tenant(db, tenant),
                urls=url,
                certificates=pems,
                want_encryption=encryption,
                container_type=container_type,
                by=Actor.system("cli"),
            )
        except (LookupError, AxisConnectionError) as exc:
            err.print(f"[red]{escape(str(exc.args[0]))}[/red]")
            raise typer.Exit(2) from None
    data = issued.json_bytes() + b"\n"
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the credential
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(out, 0o600)
    err.print(
        f"connection file for {escape(tenant)} written to {escape(str(out))} (user {issued.username}); "
        "the previous connection, if any, is revoked"
    )


@axis_app.command("revoke")
def revoke_command(tenant: str) -> None:
    """Revoke the tenant's Axis connection: the docking stations are refused until a new file is imported."""
    from temoin.axis.connection import revoke
    from temoin.journal.entry import Actor

    p = open_platform(init=True)
    with p.session() as db:
        try:
            count = revoke(p, db, p.tenant(db, tenant), by=Actor.system("cli"))
        except LookupError as exc:
            err.print(f"[red]{escape(str(exc.args[0]))}[/red]")
            raise typer.Exit(2) from None
    err.print(f"{count} Axis connection(s) of {escape(tenant)} revoked")
