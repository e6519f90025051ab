"""The schema comes from Alembic migrations, and they match the models, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from temoin.jobs.models import not_the_queues
from temoin.models import metadata


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """Here the migrations run on an empty database (elsewhere tests start from a copy of a migrated one)."""
    return empty_database_url


def test_migrations_create_exactly_the_models_tables(platform):
    with platform.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True, "include_name": not_the_queues}), metadata
        )
        tables = set(inspect(conn).get_table_names())
    assert diff == [], f"models and migrations disagree: {diff}"
    assert {"recordings", "segments", "journal_entries", "tenants", "devices", "holds"} <= tables
    assert "alembic_version" in tables


def test_upgrade_is_idempotent(platform):
    from alembic.script import ScriptDirectory

    from temoin.migrate import alembic_config, upgrade

    upgrade(platform.engine)  # a second start on the same database changes nothing
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with platform.engine.connect() as conn:
        assert conn.exec_driver_sql("select version_num from alembic_version").scalar() == head


def test_the_revisions_read_without_alembic_are_alembics(tmp_path) -> None:
    """`temoin serve` on a current schema reads this code's revisions from the migration files without importing
    Alembic (10 MiB it would otherwise hold for nothing): they must be Alembic's, and a second head is refused."""
    import subprocess
    import sys

    from alembic.script import ScriptDirectory

    from temoin import migrate

    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert migrate._our_revisions() == (
        script.get_current_head(),
        frozenset(s.revision for s in script.walk_revisions()),
    )

    code = "import sys, temoin.migrate as m; m._our_revisions(); print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False", "reading this code's revisions imported Alembic"

    # A branch (two files on the same parent) has two heads: refused, as Alembic would.
    fake = tmp_path / "migrations"
    (fake / "versions").mkdir(parents=True)
    for name, rev, down in (("a.py", "a1", None), ("b.py", "b1", "a1"), ("c.py", "c1", "a1")):
        (fake / "versions" / name).write_text(f'revision = "{rev}"\ndown_revision = {down!r}\n')
    original = migrate.MIGRATIONS
    migrate._our_revisions.cache_clear()
    try:
        migrate.MIGRATIONS = fake
        with pytest.raises(RuntimeError, match="one head"):
            migrate._our_revisions()
    finally:
        migrate.MIGRATIONS = original
        migrate._our_revisions.cache_clear()
