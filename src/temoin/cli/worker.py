"""`temoin worker`: runs the queued background jobs and the periodic duties (TEMOIN_JOBS=postgresql)."""

from __future__ import annotations

import logging

import typer

from temoin.cli.context import console, err, open_platform


def worker(
    concurrency: int | None = typer.Option(None, help="jobs run at once (default TEMOIN_WORKER_CONCURRENCY)"),
) -> None:
    """Run background jobs (extraction packages, scrubs) and the periodic pass (retention, journal prune and seal,
    package expiry) from the PostgreSQL queue, until stopped (SIGTERM / Ctrl-C). Start as many as you like, on any
    machine sharing the database and the blob store: each job runs once, each period's pass once; the jobs of a
    worker that dies are run again by another."""
    from temoin.jobs.queue import run_worker
    from temoin.maintenance import register_duties

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = open_platform()
    if p.settings.jobs != "postgresql":
        err.print(
            "[red]`temoin worker` runs the jobs queued in PostgreSQL: set TEMOIN_JOBS=postgresql (with a PostgreSQL "
            "TEMOIN_DATABASE_URL) on the servers and the workers; with TEMOIN_JOBS=inline the server runs them[/red]"
        )
        raise typer.Exit(2)
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
