"""The platform's files are private to the service's user: the data folder 0700, the database and every file 0600.

The command line sets the process's umask to 0o077 before anything is created; `temoin serve` also checks what
already exists (a folder created before, a database placed elsewhere by TEMOIN_DATABASE_URL) and refuses to start
while another local user could read it, naming each path and the command that fixes it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the camera writes its files with write_private and has no platform settings
    from temoin.settings import Settings

PRIVATE_UMASK = 0o077


def restrict_umask() -> None:
    os.umask(PRIVATE_UMASK)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` survive a power loss."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_folder(folder: Path) -> Path:
    """`folder`, created if needed, mode 0700 (tightened if it was open to others)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` to `path`, mode 0600, so that a crash leaves the old file or the new one whole.

    A unique temporary file in the same (existing) folder, named .NAME.*.tmp (two writers never share one; what a
    crash leaves is found by that pattern), fsync of the file, rename, fsync of the folder. `exclusive` refuses to
    replace an existing file (FileExistsError: a key is never overwritten by accident, two processes initialising
    at once keep the first key)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600 by construction
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)  # FileExistsError if another process wrote it first
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def sqlite_files(database_url: str) -> list[Path]:
    from sqlalchemy.engine import make_url  # here: the camera agent uses this module and has no database

    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return []
    db = Path(url.database)
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")) if p.exists()]


def too_open(settings: Settings) -> list[tuple[Path, int]]:
    """Paths another local user may read or enter: the data folder (its mode guards everything below it, the
    vault, the journal, the keys) and the SQLite database files wherever they lie."""
    out = []
    for path in [settings.home, *sqlite_files(settings.database_url)]:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            out.append((path, mode))
    return out


def explain(found: list[tuple[Path, int]]) -> str:
    lines = [
        f"  {path} is {mode:04o}: {'group or others may read it' if mode & 0o044 else 'group or others have access'}"
        for path, mode in found
    ]
    fixes = " && ".join(f"chmod {'700' if path.is_dir() else '600'} {path}" for path, _ in found)
    return (
        "the platform's files must be private to the service's user (they hold the rights register, password "
        "hashes, keys and recordings); too permissive:\n" + "\n".join(lines) + f"\nRun `{fixes}` and start again."
    )
