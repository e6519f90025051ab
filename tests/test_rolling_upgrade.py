"""The rolling upgrade of docs/deploy.md, on PostgreSQL with real processes: a node of this release serves while
`temoin init` of the next release migrates its database (an expand migration that adds columns, a table and an index
built CONCURRENTLY); sign-ins and a camera's upload go on during the migration and after it; then the node is
replaced by one of the next release, started beside it before it stops.

The next release is a copy of this code with one more migration in its versions folder: nothing in src knows it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg
import pytest

import temoin
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.settings import Settings
from tests.helpers import make_commune, sign_in, upload
from tests.migration_helpers import head, migration_source
from tests.serve_helpers import ServerProcess, base_env, free_port

pytestmark = pytest.mark.slow

GATE = 7_424_242  # an advisory lock the test holds: the migration waits on it, so "during" is certain, not timed

# The next release's migration: expand only. Its first part commits (the columns), then, outside any transaction,
# it waits for the test's gate and builds an index without blocking writes.
NEXT = f"""\
    op.add_column("tenants", sa.Column("motto", sa.Text(), nullable=True))
    op.add_column("recordings", sa.Column("reviewed_twice", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table("next_release_notes", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("text", sa.Text()))
    with op.get_context().autocommit_block():
        op.execute("SELECT pg_advisory_lock({GATE})")
        op.execute("SELECT pg_advisory_unlock({GATE})")
        op.create_index("ix_recordings_reviewed_twice", "recordings", ["reviewed_twice"], postgresql_concurrently=True)
"""


@pytest.fixture
def next_release(tmp_path: Path) -> Path:
    """The next release's code: this one's, plus migration 9001."""
    src = tmp_path / "next-release" / "src"
    shutil.copytree(Path(temoin.__file__).parent, src / "temoin", ignore=shutil.ignore_patterns("__pycache__"))
    (src / "temoin" / "migrations" / "versions" / "9001_next_release.py").write_text(
        migration_source("9001", head(), NEXT)
    )
    return src


def _env(settings: Settings, code: Path, **more: str) -> dict[str, str]:
    return base_env(settings, PYTHONPATH=str(code), **more)


def _node(settings: Settings, code: Path, log: Path) -> ServerProcess:
    """`temoin serve` of one release (its code on PYTHONPATH) in its own process, answering."""
    port = free_port()
    node = ServerProcess(
        "the node",
        [sys.executable, "-m", "temoin", "serve", "--port", str(port)],
        env=_env(settings, code),
        cwd=settings.home,
        log=log,
        url=f"http://127.0.0.1:{port}",
        grace_s=20,
    )
    node.wait_answering(60)
    return node


def _revision(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return row[0]


def _has_column(url: str, table: str, column: str) -> bool:
    with psycopg.connect(url) as conn:
        return (
            conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = %s", (table, column)
            ).fetchone()
            is not None
        )


@pytest.fixture
def gate(settings: Settings) -> Iterator[psycopg.Connection]:
    conn = psycopg.connect(settings.database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    conn.execute("SELECT pg_advisory_lock(%s)", (GATE,))
    yield conn
    conn.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_node_serves_while_the_next_release_migrates_then_gives_way_to_it(
    platform: Platform, settings: Settings, next_release: Path, gate: psycopg.Connection, tmp_path: Path
) -> None:
    url = settings.database_url
    this_release = Path(temoin.__file__).parent.parent
    commune = make_commune(platform, cameras=1)
    chief = commune.users[Role.CHIEF]
    before = head()
    with ExitStack() as stack:
        a = _node(settings, this_release, tmp_path / "node-a.log")
        stack.callback(a.stop)

        with (tmp_path / "init.log").open("wb") as out:  # `temoin init` of the next release, from anywhere
            init = subprocess.Popen(
                [sys.executable, "-m", "temoin", "init"],
                env=_env(settings, next_release, TEMOIN_DB_LOCK_TIMEOUT_S="120"),  # it waits on the test's gate
                cwd=settings.home,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        stack.callback(lambda: init.poll() is None and init.kill())
        deadline = time.monotonic() + 60
        while not _has_column(url, "recordings", "reviewed_twice"):  # the migration's first part committed
            assert init.poll() is None, (tmp_path / "init.log").read_text()
            assert time.monotonic() < deadline, "the migration did not start"
            time.sleep(0.1)

        # During the migration: node A (this release) signs in and ingests on the schema being expanded.
        with httpx.Client(base_url=a.url, timeout=20) as client:
            sign_in(platform, client, chief)
            during, _ = upload(platform, client, commune)
        assert init.poll() is None and _revision(url) == before, "the requests did not happen during the migration"

        gate.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
        assert init.wait(120) == 0, (tmp_path / "init.log").read_text()
        assert _revision(url) == "9001"

        # After it: A still serves. Its replacement on the next release starts beside it (for a moment the cluster
        # mixes both releases, as when one node of several is upgraded), then A stops.
        with httpx.Client(base_url=a.url, timeout=20) as client:
            sign_in(platform, client, chief)
            after, _ = upload(platform, client, commune)
        a2 = _node(settings, next_release, tmp_path / "node-a2.log")
        stack.callback(a2.stop)
        with httpx.Client(base_url=a2.url, timeout=20) as client:
            sign_in(platform, client, chief)
            for recording in (during, after):
                assert client.get(f"/api/v1/recordings/{recording}").status_code == 200
            upload(platform, client, commune)
        with httpx.Client(base_url=a.url, timeout=20) as client:
            sign_in(platform, client, chief)
        a.stop()

    with psycopg.connect(url) as conn:
        flags = conn.execute("SELECT reviewed_twice FROM recordings").fetchall()
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'recordings'").fetchall()
    assert flags == [(False,)] * 3  # the previous release's rows took the new column's default
    assert ("ix_recordings_reviewed_twice",) in indexes
