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
