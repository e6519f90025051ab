"""Backups of a platform's data without its secret keys, and their restoration (docs/deploy.md).

A backup folder holds the database (SQLite's online backup, or PostgreSQL's `pg_dump --format=custom`), every
file of the data folder (vault, journal files, packages, copies, the public key history) and `backup.json`: the
SHA-256 of each of them, the schema revision and a fingerprint of the master key. The master key and the platform
signing key are never in it: they are kept apart (a backup that held both would hand the evidence to whoever
takes the backup; one key lost loses every recording, so the keys get their own, separate copies).

Order while the server runs: journal files first, then the database, then the rest. The journal file can then
only lag the database (`temoin journal repair`, run by `temoin serve` at start, appends what it lacks), and every
recording in the dump has its blobs unless the retention pass deleted it meanwhile (`temoin vault scrub` names it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from temoin.errors import InvalidInput
from temoin.evidence.keys import KeySet
from temoin.evidence.signing import public_key_bytes
from temoin.keyring import HISTORY_FILE, MASTER_KEY_FILE, ROTATION_LOCK, SIGNING_KEY_FILE, KeyError_, Keyring
from temoin.private_files import private_folder, sqlite_files
from temoin.settings import Settings

FORMAT = "temoin-backup/1"
MANIFEST = "backup.json"
FILES = "files"  # the data folder's files, under their paths relative to it
SQLITE_DUMP, POSTGRES_DUMP = "database.sqlite", "database.pgdump"
# Never copied: the secret keys (kept apart), a lock, scratch space.
KEPT_APART = (f"keys/{MASTER_KEY_FILE}", f"keys/{SIGNING_KEY_FILE}")
SKIPPED = (f"keys/{ROTATION_LOCK}",)
SKIPPED_FOLDERS = ("tmp",)
_CHUNK = 1 << 20


class BackupError(InvalidInput):
    """A backup cannot be made or restored; the message says what is wrong and what to do."""


@dataclass
class BackupResult:
    folder: Path
    database: str  # "sqlite" or "postgresql"
    files: int = 0
    bytes: int = 0
    revision: str | None = None
    restored_into: Path | None = None
    kept_apart: list[str] = field(default_factory=list)


def master_key_fingerprint(master_key: bytes) -> str:
    """Names the master key a backup needs without revealing it (a one-way hash of 32 random bytes)."""
    return hashlib.sha256(b"temoin master key fingerprint\n" + master_key).hexdigest()[:32]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _kind(database_url: str) -> str:
    name = make_url(database_url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"cannot back up a {name} database: Témoin supports SQLite and PostgreSQL")
    return name


def _libpq(database_url: str) -> tuple[list[str], dict[str, str]]:
    """pg_dump/pg_restore connection arguments and environment; the password travels in PGPASSWORD, never in the
    process list."""
    url = make_url(database_url)
    args = ["--dbname", url.database or "postgres"]
    host = url.host or url.query.get("host")  # ?host=/var/run/postgresql: the local socket
    if host:
        args += ["--host", str(host)]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True)
    except FileNotFoundError:
        raise BackupError(
            f"{command[0]} is not installed: install PostgreSQL's client programs (Debian: "
            "postgresql-client, the same major version as the server or newer)"
        ) from None
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip() or done.stdout.strip()}")


def _revision(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            if "alembic_version" not in inspect(conn).get_table_names():
                return None
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


def _data_files(settings: Settings) -> list[Path]:
    """The data folder's files to copy, relative to it: journal files first (see the module's docstring)."""
    home = settings.home
    skip = {home / p for p in (*KEPT_APART, *SKIPPED)} | {p.resolve() for p in sqlite_files(settings.database_url)}
    if settings.master_key_file is not None:
        skip.add(settings.master_key_file.resolve())
    found = []
    for root, folders, names in os.walk(home):
        base = Path(root)
        folders[:] = sorted(f for f in folders if not (base == home and f in SKIPPED_FOLDERS))
        for name in sorted(names):
            path = base / name
            if path.is_file() and not path.is_symlink() and path.resolve() not in skip and path not in skip:
                found.append(path.relative_to(home))
    return sorted(found, key=lambda rel: (rel.parts[0] != "journal", str(rel)))


def create_backup(settings: Settings, folder: Path, master_key: bytes) -> BackupResult:
    """Write a backup of the platform of `settings` into `folder` (new or empty), without the secret keys."""
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(
            f"{folder} is not empty: give a new folder for each backup (an old backup is never overwritten)"
        )
    if not settings.home.is_dir():
        raise BackupError(f"no data folder at {settings.home}: set TEMOIN_HOME to the platform's data folder")
    home = settings.home.resolve()
    if folder.resolve().is_relative_to(home):
        raise BackupError(f"{folder} is inside the data folder {home}: back up to another disk or machine")
    kind = _kind(settings.database_url)
    private_folder(folder)
    result = BackupResult(folder=folder, database=kind, kept_apart=list(KEPT_APART))
    entries: dict[str, dict] = {}

    def copy(rel: Path) -> None:
        target = folder / FILES / rel
        private_folder(target.parent)
        try:
            shutil.copyfile(home / rel, target)
        except FileNotFoundError:
            return  # deleted meanwhile (retention, an expired package): it is gone from the data too
        entries[f"{FILES}/{rel.as_posix()}"] = {"size": target.stat().st_size, "sha256": _sha256(target)}
        result.files += 1
        result.bytes += target.stat().st_size

    files = _data_files(settings)
    journal = [rel for rel in files if rel.parts[0] == "journal"]
    for rel in journal:
        copy(rel)
    result.revision = _revision(settings.database_url)
    if kind == "sqlite":
        dump = folder / SQLITE_DUMP
        sources = [p for p in sqlite_files(settings.database_url) if not p.name.endswith(("-wal", "-shm", "-journal"))]
        source = sources[0] if sources else None
        if source is None:
            raise BackupError(f"no SQLite database at {make_url(settings.database_url).database}")
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(dump)
        try:
            src.backup(dst)  # a consistent snapshot, even while the server writes
        finally:
            dst.close()
            src.close()
    else:
        dump = folder / POSTGRES_DUMP
        args, env = _libpq(settings.database_url)
        _run(
            ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--file", str(dump), *args], env, "pg_dump"
        )
    entries[dump.name] = {"size": dump.stat().st_size, "sha256": _sha256(dump)}
    for rel in files[len(journal) :]:
        copy(rel)
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "database": kind,
        "schema_revision": result.revision,
        "master_key": master_key_fingerprint(master_key),
        "kept_apart": list(KEPT_APART),
        "files": entries,
    }
    (folder / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return result


def read_manifest(folder: Path) -> dict:
    """The backup's manifest, after checking every file it names against its SHA-256."""
    try:
        manifest = orjson.loads((folder / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{folder} is not a Témoin backup (no {MANIFEST})") from None
    except orjson.JSONDecodeError as exc:
        raise BackupError(f"{folder / MANIFEST} is not readable ({exc}): the backup is damaged") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder} is a backup of format {manifest.get('format')!r}; this version reads {FORMAT}")
    damaged = []
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            damaged.append(f"{name} is missing")
        elif path.stat().st_size != entry["size"] or _sha256(path) != entry["sha256"]:
            damaged.append(f"{name} differs from when it was backed up")
    if damaged:
        raise BackupError(f"the backup in {folder} is damaged, nothing was restored: " + "; ".join(damaged))
    return manifest


def _check_keys(settings: Settings, folder: Path, manifest: dict) -> None:
    """The keys put back from their separate copy are the ones this backup needs."""
    try:
        keyring = Keyring.load(settings)
    except KeyError_ as exc:
        raise BackupError(
            f"{exc}. Before restoring, put back the keys kept apart from the backup: the master key "
            f"(TEMOIN_MASTER_KEY_FILE, default {settings.keys_dir / MASTER_KEY_FILE}) and the signing "
            f"key ({settings.keys_dir / SIGNING_KEY_FILE}), mode 0600 (docs/deploy.md)"
        ) from None
    if master_key_fingerprint(keyring.master_key) != manifest["master_key"]:
        raise BackupError(
            "the master key in place is not the one this backup was made with (its recordings could "
            "not be decrypted): put back the master key kept apart at the time of the backup"
        )
    history = folder / FILES / "keys" / HISTORY_FILE
    if history.is_file():
        current = KeySet.from_json(orjson.loads(history.read_bytes()), str(history)).current
        if current is not None and current.public_key != public_key_bytes(keyring.signing_key):
            raise BackupError(
                f"the signing key in {settings.keys_dir / SIGNING_KEY_FILE} is not the platform key "
                f"{current.id} that was current at the time of the backup: put back the signing key "
                "kept apart with the master key (or, if it is lost, see docs/deploy.md)"
            )


def _target_empty(settings: Settings) -> None:
    home = settings.home
    sqlite = set(sqlite_files(settings.database_url))  # an empty database a failed start may have left
    keys = home / "keys"  # the keys put back before restoring
    present = (
        [
            p
            for p in home.rglob("*")
            if p.is_file() and p not in sqlite and not p.is_relative_to(keys) and p != settings.master_key_file
        ]
        if home.exists()
        else []
    )
    if present:
        raise BackupError(
            f"the data folder {home} already holds data ({present[0]} and {len(present) - 1} more): "
            "restore into an empty data folder (move the old one aside)"
        )
    if make_url(settings.database_url).get_backend_name() == "sqlite" and not sqlite:
        return  # no database file yet
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"the database {make_url(settings.database_url).render_as_string()} already has tables "
            f"({', '.join(sorted(tables)[:3])}...): restore into an empty database (drop and create "
            "it again, docs/deploy.md)"
        )


def restore_backup(settings: Settings, folder: Path) -> BackupResult:
    """Restore the backup in `folder` into the empty data folder and database of `settings`; the keys kept apart
    must already be in place (checked against the backup before anything is written)."""
    manifest = read_manifest(folder)
    kind = _kind(settings.database_url)
    if manifest["database"] != kind:
        raise BackupError(
            f"this backup holds a {manifest['database']} database and TEMOIN_DATABASE_URL names a "
            f"{kind} one: restore into the same kind of database"
        )
    _check_keys(settings, folder, manifest)
    _target_empty(settings)
    result = BackupResult(
        folder=folder, database=kind, revision=manifest.get("schema_revision"), restored_into=settings.home
    )
    if kind == "sqlite":
        target = Path(make_url(settings.database_url).database or "")
        private_folder(target.parent)
        for stale in sqlite_files(settings.database_url):  # an empty database left by a failed start
            stale.unlink()
        shutil.copyfile(folder / SQLITE_DUMP, target)
        os.chmod(target, 0o600)
    else:
        args, env = _libpq(settings.database_url)
        _run(
            [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                *args,
                str(folder / POSTGRES_DUMP),
            ],
            env,
            "pg_restore",
        )
    private_folder(settings.home)
    for name, entry in manifest["files"].items():
        if not name.startswith(f"{FILES}/"):
            continue
        target = settings.home / name.removeprefix(f"{FILES}/")
        private_folder(target.parent)
        shutil.copyfile(folder / name, target)
        os.chmod(target, 0o600)
        result.files += 1
        result.bytes += entry["size"]
    return result
