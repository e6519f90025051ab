"""`temoin jobs`: the background jobs (temoin.jobs), as the web UI shows them: state, progress, outcome; cancel."""

from __future__ import annotations

import orjson
import typer
from rich.markup import escape
from sqlalchemy import select

from temoin.cli.context import console, err, open_platform

jobs_app = typer.Typer(
    help="Background jobs: extraction packages, redacted copies (faces, redaction), scrubs.", no_args_is_help=True
)


def _line(row) -> str:
    progress = f"{row.done}/{row.total}" if row.total else "-"
    at = f"{row.created_at:%Y-%m-%d %H:%M:%S}"
    return f"{row.id}  {row.kind:<20} {row.state:<10} {progress:<20} attempts {row.attempts}  {at}"


@jobs_app.command("list")
def jobs_list(limit: int = typer.Option(20, help="the newest N")) -> None:
    """The newest jobs of every tenant."""
    from temoin.jobs import JobRecord

    p = open_platform()
    with p.session() as db:
        for row in db.scalars(select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit)):
            console.print(escape(_line(row)))


@jobs_app.command("show")
def jobs_show(job_id: str) -> None:
    """One job: state, progress, error or result."""
    from temoin.errors import NotFound

    p = open_platform()
    with p.session() as db:
        try:
            row = p.jobs.get(db, job_id, None)
        except NotFound as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
        console.print(escape(_line(row)))
        if row.error:
            err.print(f"[red]{escape(row.error)}[/red]")
        if row.result is not None:
            console.print(escape(orjson.dumps(row.result, option=orjson.OPT_INDENT_2).decode()))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a job: a queued one never starts, a running one stops at its next progress report."""
    from temoin.errors import Conflict, NotFound

    p = open_platform()
    with p.session() as db:
        try:
            row = p.jobs.cancel(db, job_id, None)
        except (NotFound, Conflict) as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
        console.print(escape(_line(row)))
