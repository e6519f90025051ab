"""`temoin retention` and `temoin vault`: the periodic pass once, and the stored segments checked."""

from __future__ import annotations

import typer
from rich.markup import escape

from temoin.cli.context import console, err, open_platform, progress
from temoin.cli.journal import sealing_line as _sealing_line

retention_app = typer.Typer(help="Retention of recordings.", no_args_is_help=True)
vault_app = typer.Typer(help="The evidence vault's storage.", no_args_is_help=True)


@retention_app.command("run")
def retention_run() -> None:
    """The server's periodic pass, once: delete the recordings whose retention is over and that no hold keeps,
    prune the journal past its retention, delete expired extraction packages, seal the journal. The same pass as
    `temoin maintenance run`, with a progress bar over the recordings and a two-line summary; `maintenance run`
    reports every duty of the pass (live backups, derived files) and can skip the orphan scan."""
    from temoin.maintenance import periodic_pass

    p = open_platform()
    with progress() as bar:
        task = bar.add_task("retention sweep", total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        done = periodic_pass(p, progress=step)
        result = done.sweep
        bar.update(task, completed=len(result.deleted), total=max(len(result.deleted), 1))
    console.print(
        f"{len(result.deleted)} recordings deleted ({result.blobs_removed} blobs), "
        f"{result.held} kept by a hold, {result.orphans_removed} orphan blobs removed"
    )
    console.print(
        f"{done.journal_pruned} journal entries pruned, {done.packages_purged} expired extraction packages "
        f"deleted, {_sealing_line(done.sealing)}"
    )


@vault_app.command("scrub")
def vault_scrub(
    queue: bool = typer.Option(
        False,
        "--queue",
        help="run it as a job on a `temoin worker` (TEMOIN_JOBS=postgresql); follow it with `temoin jobs show ID`",
    ),
) -> None:
    """Decrypt and re-hash every stored segment against its signed manifest; report corruption."""
    from temoin.vault.scrub import SCRUB_JOB, scrub

    p = open_platform()
    if queue:
        if p.settings.jobs != "postgresql":
            err.print("[red]--queue needs the job queue (TEMOIN_JOBS=postgresql and a `temoin worker`)[/red]")
            raise typer.Exit(2)
        job = p.jobs.submit(SCRUB_JOB, {})
        p.close()
        console.print(f"scrub queued as job {job.id}: `temoin jobs show {job.id}`")
        return
    with p.session() as db, progress() as bar:
        task = bar.add_task("scrubbing recordings", total=None)
        result = scrub(p, db, progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"{result.recordings} recordings, {result.segments} segments, {result.bytes} bytes checked")
    if result.lost:
        console.print(
            f"{result.lost} segment(s) lost at the camera, declared in their signed receipts: never in "
            "the vault, not checked (not corruption)"
        )
    if result.ok:
        console.print("[green]no corruption[/green]")
        return
    for problem in result.problems:
        console.print(f"[red]{escape(str(problem))}[/red]")
    raise typer.Exit(1)
