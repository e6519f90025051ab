"""The restore drill of docs/deploy.md: data made, backed up without its keys, wiped, restored with the keys from
their separate place; then the journal and every recording check out. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from temoin.journal.checkpoints import seal
from tests.conftest import POSTGRES_URL
from tests.helpers import make_commune, upload
from tests.journal_helpers import TEMOIN


def _temoin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TEMOIN), *args], env=env, capture_output=True, text=True, timeout=120)


def _wipe_database(url: str) -> None:
    """The database lost: SQLite's file deleted, PostgreSQL's database dropped and created again, empty."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
        return
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{parsed.database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{parsed.database}"')


def test_a_backup_without_its_keys_restores_into_a_verified_platform(platform, client, tmp_path):
    p = platform
    commune = make_commune(p, cameras=1)
    upload(p, client, commune)
    with p.session() as db:
        seal(db, p.journal.sink, p.keyring)
        db.commit()
    home, url = p.settings.home, p.settings.database_url
    env = dict(os.environ, TEMOIN_HOME=str(home), TEMOIN_DATABASE_URL=url, COLUMNS="250", NO_COLOR="1")
    env.pop("TEMOIN_MASTER_KEY", None)
    env.pop("TEMOIN_MASTER_KEY_FILE", None)

    # The keys' own copy, kept apart (in real life: offline, another place).
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o700)
    for name in ("master.key", "platform-signing.pem"):
        shutil.copy2(home / "keys" / name, safe / name)

    backup = tmp_path / "backup"
    made = _temoin(env, "backup", "create", str(backup))
    assert made.returncode == 0, made.stderr
    assert "not in the backup, keep them apart" in made.stdout
    in_backup = {q.name for q in backup.rglob("*")}
    assert "master.key" not in in_backup and "platform-signing.pem" not in in_backup
    master = (safe / "master.key").read_bytes()
    assert all(
        base64.b64decode(master.strip()) not in q.read_bytes() and master.strip() not in q.read_bytes()
        for q in backup.rglob("*")
        if q.is_file()
    )

    # The machine is lost: data folder and database.
    p.close()
    shutil.rmtree(home)
    _wipe_database(url)

    # Without the keys put back, nothing is restored, and the message says what to do.
    refused = _temoin(env, "backup", "restore", str(backup))
    assert refused.returncode == 1
    assert "put back the keys kept apart" in refused.stderr
    assert not (home / "vault").exists()

    # A wrong master key is refused before anything is written.
    (home / "keys").mkdir(parents=True, mode=0o700)
    shutil.copy2(safe / "platform-signing.pem", home / "keys" / "platform-signing.pem")
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(base64.b64encode(os.urandom(32)) + b"\n")
    wrong.chmod(0o600)
    refused = _temoin(dict(env, TEMOIN_MASTER_KEY_FILE=str(wrong)), "backup", "restore", str(backup))
    assert refused.returncode == 1 and "not the one this backup was made with" in refused.stderr
    assert not (home / "vault").exists()

    # The master key from its separate place (here read where it is kept: TEMOIN_MASTER_KEY_FILE).
    env["TEMOIN_MASTER_KEY_FILE"] = str(safe / "master.key")
    restored = _temoin(env, "backup", "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert "temoin journal verify" in restored.stdout

    verified = _temoin(env, "journal", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    scrubbed = _temoin(env, "vault", "scrub")
    assert scrubbed.returncode == 0, scrubbed.stdout + scrubbed.stderr
    assert "1 recordings, 2 segments" in scrubbed.stdout and "no corruption" in scrubbed.stdout

    # Restoring again over the restored data is refused: a restore never overwrites.
    again = _temoin(env, "backup", "restore", str(backup))
    assert again.returncode == 1 and "already holds data" in again.stderr


def test_a_damaged_backup_is_refused_whole(platform, client, tmp_path):
    p = platform
    commune = make_commune(p, cameras=1)
    upload(p, client, commune)
    env = dict(
        os.environ,
        TEMOIN_HOME=str(p.settings.home),
        TEMOIN_DATABASE_URL=p.settings.database_url,
        COLUMNS="250",
        NO_COLOR="1",
    )
    env.pop("TEMOIN_MASTER_KEY", None)
    env.pop("TEMOIN_MASTER_KEY_FILE", None)
    backup = tmp_path / "backup"
    assert _temoin(env, "backup", "create", str(backup)).returncode == 0
    segment = next(q for q in (backup / "files" / "vault").rglob("*") if q.is_file())
    segment.write_bytes(segment.read_bytes()[:-1] + b"\0")

    shutil.rmtree(p.settings.home / "vault")
    refused = _temoin(env, "backup", "restore", str(backup))
    assert refused.returncode == 1
    assert "is damaged, nothing was restored" in refused.stderr and segment.name in refused.stderr
    assert not (p.settings.home / "vault").exists()
