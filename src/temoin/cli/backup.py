"""`temoin backup`: the platform's data backed up without its secret keys, and restored (docs/deploy.md)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from temoin.cli.context import EXIT_FAILED, console, err

backup_app = typer.Typer(help="Backups of the data (the keys are kept apart).", no_args_is_help=True)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@backup_app.command("create")
def backup_create(folder: Path = typer.Argument(..., help="a new or empty folder, on another disk or machine")) -> None:
    """Back up the database, the vault, the journal files and every other file of the data folder into FOLDER,
    with the SHA-256 of each. The master key and the signing key are NOT in it: keep them apart (docs/deploy.md).
    Safe while the server runs."""
    from temoin.backup import BackupError, create_backup
    from temoin.cli.context import open_platform

    p = open_platform()
    try:
        with console.status("backing up…"):
            done = create_backup(p.settings, folder, p.keyring.master_key)
    except BackupError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        p.close()
    console.print(
        f"backed up the {done.database} database (schema {done.revision}) and {done.files} files "
        f"({_size(done.bytes)}) into {escape(str(folder))}",
        soft_wrap=True,
    )
    console.print(f"not in the backup, keep them apart: {', '.join(done.kept_apart)}", soft_wrap=True)
    if p.settings.blob_store_url:
        bucket = p.settings.blob_store_url.split("?", 1)[0]
        console.print(
            f"not in the backup either: the recordings' blobs, in the object store {escape(bucket)}; copy the "
            "bucket with the store's own means (docs/deploy.md)",
            soft_wrap=True,
        )


@backup_app.command("restore")
def backup_restore(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="a folder written by `temoin backup create`"),
) -> None:
    """Restore a backup into an empty data folder (TEMOIN_HOME) and an empty database (TEMOIN_DATABASE_URL). Put
    back the master key and the signing key from their separate copy first: they are checked against the backup,
    and every file against its SHA-256, before anything is written."""
    from temoin.backup import BackupError, restore_backup
    from temoin.keyring import KeyError_
    from temoin.settings import Settings

    try:
        with console.status("restoring…"):
            done = restore_backup(Settings.from_env(), folder)
    except (BackupError, KeyError_) as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    console.print(
        f"restored the {done.database} database (schema {done.revision}) and {done.files} files "
        f"({_size(done.bytes)}) into {escape(str(done.restored_into))}",
        soft_wrap=True,
    )
    console.print(
        "now run `temoin init` (it migrates the schema if this version is newer), then check it: "
        "`temoin journal verify` and `temoin vault scrub`",
        soft_wrap=True,
    )
