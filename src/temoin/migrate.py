"""Schema migrations with Alembic, run programmatically (no alembic.ini to find), and the check that a node's code
can run on the schema it finds (docs/deploy.md, "Upgrades on a running cluster").

Mixed versions: during a rolling upgrade the schema is migrated first, while nodes of the previous release still
run. Migrations follow expand/contract (docs/deploy.md; enforced by tests/test_migrations.py), so the previous
release's code works on the new schema. A node therefore accepts a schema newer than its code when the schema still
holds everything its models use (its tables, columns, types, nullability, server defaults and unique indexes) and
asks nothing more of it (no new required column it would not fill, no new uniqueness on its columns); it refuses a
schema older than its code ("run `temoin init`") or one that a contract migration took something from.
"""

from __future__ import annotations

import ast
import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from temoin.coordination import lock_key
from temoin.errors import Conflict

if TYPE_CHECKING:  # Alembic (10 MiB) is loaded only to migrate or compare: a server on a current schema never needs it
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = "schema-migration"  # one `temoin init` at a time on a shared database
log = logging.getLogger("temoin.migrate")


class SchemaMismatch(Conflict):
    """The database's schema and this version of Témoin do not fit together: the message says which way and what to
    run."""


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


@dataclass
class SchemaState:
    """Where the database's schema stands against this code's migrations."""

    database: str | None  # the revision in alembic_version; None: no Témoin schema (an empty database)
    code: str  # this code's head revision
    known: bool  # the database's revision is one of this code's (else it comes from a newer release)
    incompatible: list[str] = field(default_factory=list)  # with a newer schema: what this code cannot run with

    @property
    def current(self) -> bool:
        return self.database == self.code

    @property
    def behind(self) -> bool:
        return self.database is None or (self.known and not self.current)

    @property
    def ahead(self) -> bool:
        return self.database is not None and not self.known


def _revisions(cfg: Config | None) -> tuple[str, frozenset[str]]:
    """This code's head and every revision it knows."""
    if cfg is None:
        return _our_revisions()
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    assert head is not None, "the migrations have one head"
    return head, frozenset(s.revision for s in script.walk_revisions())


@functools.cache
def _our_revisions() -> tuple[str, frozenset[str]]:
    """This code's head and revisions, read from the migration files' `revision` and `down_revision` lines (as
    Alembic reads them, without importing it; tests/test_migrations.py checks both agree)."""
    links: dict[str, tuple[str, ...]] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found: dict[str, Any] = {}
        for node in ast.parse(path.read_text("utf-8")).body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                        found[target.id] = ast.literal_eval(node.value) if node.value is not None else None
        if "revision" in found:
            down = found.get("down_revision")
            links[found["revision"]] = tuple(down) if isinstance(down, tuple | list) else (down,) if down else ()
    pointed = {d for downs in links.values() for d in downs}
    heads = sorted(set(links) - pointed)
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must have one head, found {heads}: merge the branches (alembic merge)")
    return heads[0], frozenset(links)


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def schema_state(engine: Engine, cfg: Config | None = None) -> SchemaState:
    """The database's revision against this code's; for a newer schema, what in it this code cannot run with."""
    head, revisions = _revisions(cfg)
    with engine.connect() as conn:
        found = _revision(conn)
        known = found is None or found in revisions
        state = SchemaState(database=found, code=head, known=known)
        if state.ahead:
            state.incompatible = incompatibilities(conn)
    return state


def incompatibilities(conn: Connection) -> list[str]:
    """What this code's models need that the schema no longer gives, or what the schema asks that this code does
    not do: empty when this code can run on it (the schema is this code's, or newer by expand migrations only)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from temoin.jobs.models import not_the_queues
    from temoin.models import metadata

    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": not_the_queues})
    ours = {t.name: {c.name for c in t.columns} for t in metadata.sorted_tables}
    found: list[str] = []
    for diff in _flatten(compare_metadata(ctx, metadata)):
        kind = diff[0]
        if kind == "add_table":
            found.append(f"table {diff[1].name} is gone")
        elif kind == "add_column":
            found.append(f"column {diff[2]}.{diff[3].name} is gone")
        elif kind == "modify_type":
            found.append(f"column {diff[2]}.{diff[3]} changed type ({diff[6]} here, {diff[5]} in the database)")
        elif kind == "modify_nullable" and diff[5] is False and diff[6] is True:
            found.append(f"column {diff[2]}.{diff[3]} became required (NOT NULL)")
        elif kind == "remove_column" and _required_without_default(diff[3]):
            found.append(f"column {diff[2]}.{diff[3].name} is new and required, and this version does not fill it")
        elif kind in ("add_index", "add_constraint") and _unique(diff[1]):
            found.append(f"unique {diff[1].name} on {diff[1].table.name} is gone")
        elif kind in ("remove_index", "remove_constraint") and _unique(diff[1]):
            table = diff[1].table.name
            if {c.name for c in diff[1].columns} <= ours.get(table, set()):
                found.append(f"{diff[1].name} on {table} is a new uniqueness on columns this version writes")
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    for table in metadata.sorted_tables:  # a server default this code relies on (it does not send the value)
        if table.name in present:
            reflected = {c["name"]: c for c in inspector.get_columns(table.name)}
            for column in table.columns:
                got = reflected.get(column.name)
                if column.server_default is not None and got is not None and got.get("default") is None:
                    found.append(f"column {table.name}.{column.name} lost its server default")
    return sorted(set(found))


def _flatten(diffs: list[Any]) -> Iterator[tuple[Any, ...]]:
    for diff in diffs:  # compare_metadata groups a column's modifications in a list
        if isinstance(diff, list):
            yield from diff
        else:
            yield diff


def _required_without_default(column: Any) -> bool:
    return not column.nullable and column.server_default is None and column.autoincrement is not True


def _unique(item: Any) -> bool:
    from sqlalchemy import UniqueConstraint

    return isinstance(item, UniqueConstraint) or bool(getattr(item, "unique", False))


def _explain(state: SchemaState) -> str:
    if state.database is None:
        return "the database has no Témoin schema yet: run `temoin init` first (it creates it)"
    if state.behind:
        return (
            f"the database schema is at revision {state.database} and this version of Témoin needs {state.code}: "
            'run `temoin init` first (it migrates the schema; docs/deploy.md, "Upgrades"), then start again'
        )
    return (
        f"the database schema (revision {state.database}) is newer than this version of Témoin ({state.code}) and "
        f"a contract migration removed or tightened what this version uses: {'; '.join(state.incompatible)}. "
        'Run the newer release on this node (docs/deploy.md, "Upgrades")'
    )


def check(engine: Engine, cfg: Config | None = None) -> SchemaState:
    """Refuse (SchemaMismatch) a schema this code cannot run on: none, older, or newer past a contract migration.
    A newer schema reached by expand migrations only is accepted, with a line in the log."""
    state = schema_state(engine, cfg)
    if state.behind or state.incompatible:
        raise SchemaMismatch(_explain(state))
    if state.ahead:
        log.warning(
            "the database schema (revision %s) is newer than this version of Témoin (%s); it runs on it (expand "
            "migrations only): upgrade this node soon",
            state.database,
            state.code,
        )
    return state


def upgrade(engine: Engine, cfg: Config | None = None) -> SchemaState:
    """Migrate the schema to this code's head (`temoin init`). A newer schema that this code can run on is left as
    it is; one it cannot run on is refused. On PostgreSQL one migration runs at a time (an advisory lock: a second
    `temoin init` waits, then finds nothing to do), each revision in its own transaction, so that its locks are
    held briefly and a migration may build an index CONCURRENTLY (Alembic's autocommit_block, which on SQLite simply
    runs its content)."""
    cfg = cfg or alembic_config()
    with _migration_lock(engine):
        state = schema_state(engine, cfg)
        if state.ahead:
            if state.incompatible:
                raise SchemaMismatch(_explain(state))
            return state
        if state.current:
            return state
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["transaction_per_migration"] = True
            from alembic import command

            command.upgrade(cfg, "head")
    return schema_state(engine, cfg)


def start(engine: Engine) -> SchemaState:
    """What `temoin serve` does: an empty database gets the schema (a first start, as `temoin init`); an existing
    schema is checked, never migrated: migrating is `temoin init`'s, run once for the whole cluster."""
    if schema_state(engine).database is None:
        return upgrade(engine)
    return check(engine)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name != "postgresql":
        yield  # SQLite: one machine, its writer lock serialises
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(MIGRATION_LOCK)})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(MIGRATION_LOCK)})
