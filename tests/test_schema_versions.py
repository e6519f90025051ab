"""Mixed versions during a rolling upgrade (docs/deploy.md, "Upgrades on a running cluster"): a node refuses a schema
older than its code ("run `temoin init` first"), runs on a newer one reached by expand migrations only, and refuses
one that a contract migration took something from; `temoin serve` never migrates an existing schema. On SQLite
and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from temoin.cli import app as cli_app
from temoin.db import make_engine
from temoin.identity.models import Tenant
from temoin.migrate import SchemaMismatch, alembic_config, check, schema_state, upgrade
from temoin.platform import Platform
from temoin.settings import Settings
from tests.migration_helpers import EXPAND, head, next_release

runner = CliRunner()


def _settings(tmp_path: Path, url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=url, secure_cookies=False)


def _env(settings: Settings) -> dict[str, str]:
    return {"TEMOIN_HOME": str(settings.home), "TEMOIN_DATABASE_URL": settings.database_url, "COLUMNS": "300"}


def test_a_node_refuses_a_schema_older_than_its_code_until_init_migrates_it(
    empty_database_url: str, tmp_path: Path
) -> None:
    previous = ScriptDirectory.from_config(alembic_config()).get_revision(head()).down_revision
    assert isinstance(previous, str)
    engine = make_engine(empty_database_url)
    cfg = alembic_config()
    with engine.connect() as conn:  # the database as the previous release left it
        cfg.attributes.update(connection=conn, transaction_per_migration=True)
        command.upgrade(cfg, previous)
    settings = _settings(tmp_path, empty_database_url)
    for how in ({"init": True, "schema": "start"}, {}):  # `temoin serve`; `temoin worker` and the other commands
        with pytest.raises(SchemaMismatch) as refused:
            Platform.open(settings, **how)  # type: ignore[arg-type]  # mypy joins the dicts' values to object
        assert f"at revision {previous}" in refused.value.message
        assert f"needs {head()}" in refused.value.message
        assert "run `temoin init` first" in refused.value.message
    assert schema_state(engine).database == previous  # nothing migrated behind the operator's back

    served = runner.invoke(cli_app, ["serve", "--port", "1"], env=_env(settings))
    assert served.exit_code == 1, served.output
    assert isinstance(served.exception, SystemExit)  # one line, no traceback
    assert "run `temoin init` first" in served.output

    done = runner.invoke(cli_app, ["init"], env=_env(settings))
    assert done.exit_code == 0, done.output
    assert schema_state(engine).current
    Platform.open(settings, init=True, schema="start").close()  # the node starts now
    engine.dispose()


def test_a_first_start_creates_the_schema_of_an_empty_database(empty_database_url: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path, empty_database_url)
    with pytest.raises(SchemaMismatch, match="no Témoin schema yet: run `temoin init` first"):
        Platform.open(settings, init=True, schema="check")  # the keys are made, the schema is not: a worker's start
    p = Platform.open(settings, init=True, schema="start")  # `temoin serve` on a new install
    try:
        assert schema_state(p.engine).current
    finally:
        p.close()


def test_a_node_runs_on_a_newer_schema_of_expand_migrations(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    newer = next_release(tmp_path / "next", EXPAND)
    upgrade(engine, newer)  # `temoin init` of the next release
    state = schema_state(engine)
    assert state.database == "9001" and state.ahead and state.incompatible == []
    assert "ix_tenants_motto" in {i["name"] for i in inspect(engine).get_indexes("tenants")}

    settings = _settings(tmp_path, database_url)
    p = Platform.open(settings, init=True, schema="start")  # a node of this release restarts: it runs
    try:
        with p.session() as db:  # and writes rows as it did, leaving the new columns to their defaults
            db.add(Tenant(slug="after", name="After the migration", profile="fr-police-municipale"))
            db.commit()
        with engine.connect() as conn:
            row = conn.execute(text("SELECT motto, tier FROM tenants WHERE slug = 'after'")).one()
        assert tuple(row) == (None, "standard")
    finally:
        p.close()
    assert upgrade(engine).database == "9001"  # `temoin init` of this release: nothing to do, nothing undone
    done = runner.invoke(cli_app, ["init"], env=_env(settings))
    assert done.exit_code == 0 and "newer than this version" in done.output, done.output
    engine.dispose()


CONTRACTS = {
    "a dropped column": (
        '    with op.batch_alter_table("tenants") as b:\n        b.drop_column("name")',
        "column tenants.name is gone",
    ),
    "a dropped table": ('    op.drop_table("journal_witness_progress")', "table journal_witness_progress is gone"),
    "a new required column": (
        '    op.add_column("tenants", sa.Column("tier", sa.String(16), nullable=False))',
        "column tenants.tier is new and required",
    ),
    "a tightened column": (
        '    with op.batch_alter_table("tenants") as b:\n        b.alter_column("territory", nullable=False)',
        "column tenants.territory became required",
    ),
    "a new uniqueness": (
        '    op.create_index("ix_tenants_name_unique", "tenants", ["name"], unique=True)',
        "ix_tenants_name_unique on tenants is a new uniqueness",
    ),
}


@pytest.mark.parametrize("contract", list(CONTRACTS))
def test_a_node_refuses_a_newer_schema_past_a_contract_migration(
    database_url: str, tmp_path: Path, contract: str
) -> None:
    body, named = CONTRACTS[contract]
    engine = make_engine(database_url)
    with engine.begin() as conn:  # the tables these migrations change must exist with the columns named
        tables = set(inspect(conn).get_table_names())
    assert {"tenants", "journal_witness_progress"} <= tables
    command_cfg = next_release(tmp_path / "next", body)
    with engine.connect() as conn:
        command_cfg.attributes.update(connection=conn, transaction_per_migration=True)
        command.upgrade(command_cfg, "head")
    with pytest.raises(SchemaMismatch) as refused:
        check(engine)
    assert named in refused.value.message, refused.value.message
    assert "newer than this version" in refused.value.message and "Run the newer release" in refused.value.message
    with pytest.raises(SchemaMismatch):
        upgrade(engine)  # `temoin init` of this release neither
    engine.dispose()


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_two_inits_at_once_on_postgresql_do_not_race(empty_database_url: str) -> None:
    """Two machines run `temoin init` at the same moment: one migrates, the other waits, then finds nothing to do."""
    import threading

    engines = [make_engine(empty_database_url) for _ in range(2)]
    errors: list[BaseException] = []

    def init(engine: Engine) -> None:
        try:
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=init, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert all(schema_state(engine).current for engine in engines)
    for engine in engines:
        engine.dispose()
