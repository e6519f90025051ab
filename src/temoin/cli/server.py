"""`temoin init` and `temoin serve`: the platform's data folder, keys and schema; the server."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from temoin.cli.context import console, err, open_platform


def init() -> None:
    """Create the data folder and the keys, and create or migrate the database schema (idempotent). On a cluster,
    run it once from one machine before restarting the nodes on the new version (docs/deploy.md, "Upgrades")."""
    from temoin.maintenance import certify_keys
    from temoin.migrate import schema_state

    p = open_platform(init=True)
    certify_keys(p)
    state = schema_state(p.engine)
    if state.ahead:  # a node of the previous release, after the migration: nothing to do
        console.print(
            f"the database schema ({state.database}) is newer than this version ({state.code}) and compatible with "
            "it (expand migrations only): left as it is"
        )
    console.print(f"Témoin ready in [bold]{p.settings.home}[/bold] ({p.engine.url.render_as_string()})")


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    certfile: Path | None = typer.Option(None, help="TLS certificate chain (PEM): serve HTTPS (and send HSTS)"),
    keyfile: Path | None = typer.Option(None, help="TLS private key (PEM) of --certfile"),
) -> None:
    """Run the platform: API, web pages, ingest, and the retention scheduler. Serve it over TLS with --certfile
    and --keyfile, or behind a reverse proxy that terminates TLS (docs/security.md)."""
    import uvicorn

    from temoin import private_files
    from temoin.web.app import create_app
    from temoin.web.hardening import access_log_config, transport_warning

    private_files.restrict_umask()
    if (certfile is None) != (keyfile is None):
        err.print(
            "[red]give both --certfile and --keyfile (or neither, behind a reverse proxy that terminates TLS)[/red]"
        )
        raise typer.Exit(2)
    for path in (certfile, keyfile):
        if path is not None and not path.is_file():
            err.print(f"[red]{escape(str(path))}: no such file[/red]")
            raise typer.Exit(2)
    # The schema is created in an empty database (a first start) but never migrated here: `temoin init` does it,
    # once for the cluster; a node refuses a schema older than its code, or newer past a contract migration.
    p = open_platform(init=True, schema="start")
    found = private_files.too_open(p.settings)
    if found:
        err.print(f"[red]{escape(private_files.explain(found))}[/red]", soft_wrap=True)
        raise typer.Exit(2)
    warning = transport_warning(host, tls=certfile is not None)
    if warning:
        err.print(f"[bold red]{escape(warning)}[/bold red]", soft_wrap=True)
    # Cameras long-poll the platform (live acknowledgement, orders): a restart should not wait for them.
    # proxy_headers off: X-Forwarded-For is read by the app from TEMOIN_TRUSTED_PROXIES only (identity.addresses).
    uvicorn.run(
        create_app(p),
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=3,
        proxy_headers=False,
        log_config=access_log_config(),
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
    )
