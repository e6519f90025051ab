"""`temoin worker`: runs the queued background jobs and the periodic duties (TEMOIN_JOBS=postgresql)."""

from __future__ import annotations

import logging

import typer
from rich.markup import escape

from temoin.cli.context import console, err, open_platform
from temoin.errors import InvalidInput


def worker(
    concurrency: int | None = typer.Option(None, help="jobs run at once (default TEMOIN_WORKER_CONCURRENCY)"),
) -> None:
    """Run background jobs (extraction packages, scrubs) and the periodic pass (retention, journal prune and seal,
    package expiry) from the PostgreSQL queue, until stopped (SIGTERM / Ctrl-C). Start as many as you like, on any
    machine sharing the database and the blob store: each job runs once, each period's pass once; the jobs of a
    worker that dies are run again by another."""
    from temoin.jobs.queue import conninfo, run_worker
    from temoin.maintenance import register_duties
    from temoin.settings import Settings

    settings = Settings.from_env()
    if settings.jobs != "postgresql":
        err.print(
            "[red]`temoin worker` runs the jobs queued in PostgreSQL: set TEMOIN_JOBS=postgresql (with a PostgreSQL "
            "TEMOIN_DATABASE_URL) on the servers and the workers; with TEMOIN_JOBS=inline the server runs them[/red]"
        )
        raise typer.Exit(2)
    try:
        conninfo(settings.database_url)
    except InvalidInput as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = open_platform()
    register_duties(p)
    console.print(f"worker: jobs from {p.engine.url.render_as_string()}")
    try:
        run_worker(
            p,
            concurrency=concurrency or p.settings.worker_concurrency,
            heartbeat_s=p.settings.worker_heartbeat_s,
            stalled_after_s=p.settings.worker_stalled_after_s,
        )
    finally:
        p.close()
