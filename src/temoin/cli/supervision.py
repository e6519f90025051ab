"""`temoin cctv`: the registry of fixed CCTV cameras (import a CSV or GeoJSON file, list, withdraw)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from temoin.cli.context import console, err, open_platform

cctv_app = typer.Typer(help="The commune's fixed CCTV cameras (vidéoprotection registry).", no_args_is_help=True)


@cctv_app.command("import")
def import_cmd(
    tenant: str,
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="a .csv or .geojson registry file"
    ),
    stream_base: str | None = typer.Option(None, help="base URL for features giving stream_path"),
) -> None:
    """Import cameras from a CSV or GeoJSON file: all or nothing, upsert by id, journaled."""
    from temoin.journal.entry import Actor
    from temoin.supervision.registry import RegistryError, import_file

    p = open_platform()
    with p.session() as db:
        try:
            t = p.tenant(db, tenant)
            with console.status(f"importing {file.name}"):
                result = import_file(
                    p, db, t, file.name, file.read_bytes(), actor=Actor.system("cli"), stream_base=stream_base
                )
        except (RegistryError, LookupError) as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
    console.print(
        f"{result.total} camera(s) imported into [bold]{tenant}[/bold]: {result.created} new, "
        f"{result.updated} updated, {result.ptz} PTZ"
    )


@cctv_app.command("list")
def list_cmd(tenant: str) -> None:
    """The tenant's CCTV cameras (no stream URL, no credential shown)."""
    from temoin.supervision.registry import cameras_of

    p = open_platform()
    table = Table("id", "name", "lat", "lon", "heading", "fov", "range m", "height m", "PTZ", "ONVIF")
    with p.session() as db:
        try:
            t = p.tenant(db, tenant)
        except LookupError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
        cams = cameras_of(db, t.id)
        for c in cams:
            table.add_row(
                escape(c.id),
                escape(c.name),
                f"{c.lat:.6f}",
                f"{c.lon:.6f}",
                f"{c.heading_deg:.0f}°",
                f"{c.fov_deg:.0f}°",
                f"{c.range_m:.0f}",
                f"{c.height_m:.1f}",
                f"yes ×{c.max_zoom:g}" if c.ptz else "no",
                ("yes" + (" (user set)" if c.onvif_username else "")) if c.onvif_url else "no",
            )
    console.print(table)
    console.print(f"{len(cams)} camera(s)")


@cctv_app.command("withdraw")
def withdraw_cmd(
    tenant: str, camera_id: str, reason: str = typer.Option("", help="why (removed, broken...), kept in the journal")
) -> None:
    """Withdraw a camera from service: off the map, the nearby list and the video wall; import it to restore.
    A server running elsewhere stops offering it at once; a feed already open ends when its viewers leave."""
    from temoin.journal.entry import Actor
    from temoin.supervision.registry import withdraw

    p = open_platform()
    with p.session() as db:
        try:
            cam = withdraw(p, db, p.tenant(db, tenant), camera_id, actor=Actor.system("cli"), reason=reason)
        except LookupError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
    console.print(f"camera [bold]{escape(cam.id)}[/bold] ({escape(cam.name)}) withdrawn from {tenant}'s registry")
