"""Expand/contract (docs/deploy.md, "Upgrades on a running cluster"): a release's migrations keep the previous
release's code working on the new schema, so that nodes can be upgraded one at a time while the others serve.

Each migration's upgrade() is run against a recording `op` (no database) for both dialects, and every operation it
asks for is classified. Additive: a new table, a nullable column or one with a server default, an index, a
constraint on what the same migration created, loosening a NOT NULL, a data backfill (INSERT/UPDATE). Anything else
(dropping or renaming a table, column, index or constraint; a type change; a new NOT NULL; dropping a server default;
a new uniqueness or foreign key on existing columns; SQL the check cannot read as additive) must sit in a migration
marked `contract = "<reason naming the release since which no code uses it>"`, released after that release.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from temoin.migrate import MIGRATIONS

VERSIONS = MIGRATIONS / "versions"
# The rule holds from this revision on. Before it, migrations were written for a stop-start upgrade and some are not
# additive (listed below, checked to stay exactly so): upgrading across one of them needs a full stop.
RULE_FROM = "0017"
BEFORE_THE_RULE = {
    "0016": "usernames unique per tenant instead of globally, login_attempts.username widened, and two new NOT NULL "
    "columns whose server defaults it drops at once (the previous release's inserts would fail)",
}


@dataclass
class Op:
    name: str
    table: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Recorder:
    """Stands for `alembic.op` in a migration module: records what it asks for, runs nothing."""

    dialect: str
    ops: list[Op] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.ops.append(Op(name, None, args, kwargs))

        return record

    def f(self, name: str) -> str:
        return name

    @contextmanager
    def batch_alter_table(self, table: str, *_: Any, **__: Any) -> Iterator[Any]:
        yield _Batch(self, table)

    def get_context(self) -> Any:
        return SimpleNamespace(autocommit_block=nullcontext, dialect=SimpleNamespace(name=self.dialect))

    def get_bind(self) -> Any:
        def execute(statement: Any, *_: Any, **__: Any) -> None:
            self.ops.append(Op("execute", None, (statement,), {}))

        raw = SimpleNamespace(execute=execute)
        return SimpleNamespace(
            dialect=SimpleNamespace(name=self.dialect),
            execute=execute,
            exec_driver_sql=execute,
            connection=SimpleNamespace(driver_connection=raw),
        )


@dataclass
class _Batch:
    recorder: Recorder
    table: str

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.recorder.ops.append(Op(name, self.table, args, kwargs))

        return record

    def f(self, name: str) -> str:
        return name


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_migration_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recorded(path: Path, dialect: str) -> list[Op]:
    module = _load(path)
    recorder = Recorder(dialect)
    module.op = recorder  # the module's own name for alembic.op
    module.upgrade()
    return recorder.ops


def _arg(op: Op, index: int, name: str) -> Any:
    """An operation's argument by position (after the table for op.*, which batch operations omit) or keyword."""
    if name in op.kwargs:
        return op.kwargs[name]
    return op.args[index] if len(op.args) > index else None


_CREATED = re.compile(r"^CREATE\s+(TABLE|TYPE|FUNCTION|TRIGGER|SEQUENCE|VIEW|EXTENSION|INDEX)\b")
_DESTROYS = re.compile(r"\b(DROP|ALTER|RENAME|DELETE|TRUNCATE)\b", re.I)
_NAMED_TABLE = re.compile(r"^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)")
_UNIQUE_ON = re.compile(r"^CREATE\s+UNIQUE\s+INDEX\b.*?\bON\s+\"?(\w+)")


def _sql_problems(statement: Any, new_tables: set[str]) -> list[str]:
    """Raw SQL is additive only if each statement creates something, inserts, or updates (a backfill)."""
    sql = re.sub(r"--[^\n]*", "", str(statement))
    # An anonymous block runs now: additive if it neither drops, alters, renames, deletes nor truncates.
    blocks = re.findall(r"\bDO\s+\$(\w*)\$(.*?)\$\1\$", sql, flags=re.S)
    problems = [
        f"DO block not provably additive: {' '.join(body.split())[:60]}" for _, body in blocks if _DESTROYS.search(body)
    ]
    sql = re.sub(r"\bDO\s+\$(\w*)\$.*?\$\1\$", "", sql, flags=re.S)
    sql = re.sub(r"\$(\w*)\$.*?\$\1\$", "''", sql, flags=re.S)  # function bodies: not statements of their own
    for part in sql.split(";"):
        words = " ".join(part.split()).upper()
        if not words:
            continue
        if named := _NAMED_TABLE.match(words):
            new_tables.add(named.group(1).lower())
        unique = _UNIQUE_ON.match(words)
        if unique and unique.group(1).lower() in new_tables:
            continue
        if (_CREATED.match(words) and "OR REPLACE" not in words) or words.startswith(("INSERT ", "UPDATE ")):
            continue
        problems.append(f"SQL not provably additive: {words[:60]}")
    return problems


def problems(ops: list[Op]) -> list[str]:
    """What in these operations is not additive (empty: an expand migration)."""
    new_tables: set[str] = set()
    new_columns: set[tuple[str, str]] = set()
    found: list[str] = []

    def table_of(op: Op) -> str:
        return op.table if op.table is not None else op.args[0]

    def rest(op: Op) -> tuple[Any, ...]:
        return op.args if op.table is not None else op.args[1:]

    def fresh(table: str, columns: Any) -> bool:
        return table in new_tables or all((table, c) in new_columns for c in columns or ())

    for op in ops:
        if op.name == "create_table":
            new_tables.add(op.args[0])
        elif op.name == "add_column":
            table, column = table_of(op), rest(op)[0]
            new_columns.add((table, column.name))
            required = not column.nullable and column.server_default is None and not column.primary_key
            if required and table not in new_tables:
                found.append(f"add_column {table}.{column.name}: NOT NULL without a server default")
        elif op.name == "create_index":
            if op.table is not None:
                table, columns = op.table, _arg(op, 1, "columns")
            else:
                table, columns = _arg(op, 1, "table_name"), _arg(op, 2, "columns")
            if op.kwargs.get("unique") and not fresh(table, columns):
                found.append(f"create_index {op.args[0]}: a new uniqueness on existing columns of {table}")
        elif op.name in ("create_unique_constraint", "create_foreign_key", "create_check_constraint"):
            # batch: (name, [referent,] columns...); op: (name, table, [referent,] columns...)
            at = {"create_unique_constraint": 1, "create_foreign_key": 2}.get(op.name)
            if op.table is not None:
                table, columns = op.table, (op.args[at] if at is not None else None)
            else:
                table, columns = op.args[1], (op.args[at + 1] if at is not None else None)
            if table not in new_tables and (op.name == "create_check_constraint" or not fresh(table, columns)):
                found.append(f"{op.name} {op.args[0]}: constrains existing rows of {table}")
        elif op.name == "alter_column":
            table = table_of(op)
            column = rest(op)[0] if rest(op) else op.kwargs.get("column_name")
            kw = op.kwargs
            if kw.get("new_column_name"):
                found.append(f"alter_column {table}.{column}: renamed")
            if kw.get("type_") is not None:
                found.append(f"alter_column {table}.{column}: type changed")
            if kw.get("nullable") is False:
                found.append(f"alter_column {table}.{column}: made NOT NULL")
            if "server_default" in kw and kw["server_default"] is None:
                found.append(f"alter_column {table}.{column}: server default dropped (previous code may rely on it)")
        elif op.name in ("execute",):
            found += _sql_problems(op.args[0], new_tables)
        elif op.name == "bulk_insert":
            pass
        else:  # drop_*, rename_table, and anything the check does not know
            found.append(f"{op.name} {op.args[:2] if op.table is None else (op.table, *op.args[:1])}")
    return found


def _migrations() -> list[Path]:
    return sorted(VERSIONS.glob("[0-9]*.py"))


def _verdict_of(path: Path) -> list[str]:
    found: list[str] = []
    for dialect in ("postgresql", "sqlite"):
        found += [p for p in problems(recorded(path, dialect)) if p not in found]
    return found


def _verdicts() -> dict[str, list[str]]:
    return {_load(path).revision: _verdict_of(path) for path in _migrations()}


def breaches(path: Path) -> list[str]:
    """What in this migration breaks expand/contract: non-additive operations without the contract marker, a marker
    without its reason, or a marker on a migration that only adds."""
    found = _verdict_of(path)
    reason = getattr(_load(path), "contract", None)
    if reason is None:
        return found
    if not (isinstance(reason, str) and re.search(r"\brelease\b", reason)):
        return [f"`contract` must say why, naming the release since which no code uses it (got {reason!r})"]
    return [] if found else ["marked contract but only adds: drop the marker"]


def test_every_migration_since_the_rule_is_additive_or_marked_contract() -> None:
    paths = [path for path in _migrations() if _load(path).revision >= RULE_FROM]
    assert paths and _load(paths[0]).revision == RULE_FROM
    broken = {path.name: found for path in paths if (found := breaches(path))}
    assert not broken, (
        "these migrations would break the previous release's nodes during a rolling upgrade (docs/deploy.md, "
        "'Upgrades on a running cluster'): make them additive now and do the rest in a later migration marked "
        f'`contract = "..."`:\n{broken}'
    )


def test_the_baseline_is_honest() -> None:
    """Every migration before RULE_FROM that breaks the rule is known, and the one just before it does break it
    (else the rule could start earlier)."""
    verdicts = _verdicts()
    before = sorted(r for r in verdicts if r < RULE_FROM)
    not_additive = [r for r in before if verdicts[r]]
    assert before[-1] in not_additive, f"{before[-1]} is additive: RULE_FROM can start at or before it"
    assert not_additive == sorted(BEFORE_THE_RULE), {r: verdicts[r] for r in not_additive}


# --- the check itself catches what it must ----------------------------------------------------------


def _sample(tmp_path: Path, body: str, marker: str = "") -> Path:
    path = tmp_path / "9999_sample.py"
    path.write_text(
        f"import sqlalchemy as sa\nfrom alembic import op\nrevision = '9999'\ndown_revision = None\n{marker}\n\n"
        f"def upgrade():\n{body}\n"
    )
    return path


def _verdict(tmp_path: Path, body: str, dialect: str = "postgresql") -> list[str]:
    return problems(recorded(_sample(tmp_path, body), dialect))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    op.drop_column('users', 'email')", "drop_column"),
        ("    op.drop_table('users')", "drop_table"),
        ("    op.rename_table('users', 'people')", "rename_table"),
        ("    op.drop_index('ix_users_email', table_name='users')", "drop_index"),
        ("    with op.batch_alter_table('users') as b:\n        b.drop_column('email')", "drop_column"),
        ("    op.alter_column('users', 'email', new_column_name='mail')", "renamed"),
        ("    op.alter_column('users', 'email', type_=sa.Text())", "type changed"),
        ("    with op.batch_alter_table('users') as b:\n        b.alter_column('email', nullable=False)", "NOT NULL"),
        ("    op.alter_column('users', 'flag', server_default=None)", "server default dropped"),
        ("    op.add_column('users', sa.Column('x', sa.Integer(), nullable=False))", "without a server default"),
        ("    op.create_index('ix_u', 'users', ['email'], unique=True)", "new uniqueness"),
        (
            "    with op.batch_alter_table('users') as b:\n        b.create_unique_constraint('uq', ['email'])",
            "constrains",
        ),
        ("    op.create_foreign_key('fk', 'users', 'tenants', ['tenant_id'], ['id'])", "constrains"),
        ("    op.execute('ALTER TABLE users DROP COLUMN email')", "SQL not provably additive"),
        ("    op.execute('DELETE FROM users')", "SQL not provably additive"),
        ("    op.execute('DO $$ BEGIN DROP TABLE users; END $$')", "DO block not provably additive"),
        ("    op.execute('CREATE OR REPLACE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql')", "SQL not"),
    ],
)
def test_the_check_finds_what_is_not_additive(tmp_path: Path, body: str, expected: str) -> None:
    found = _verdict(tmp_path, body)
    assert found and expected in found[0], found


def test_the_check_lets_additive_operations_pass(tmp_path: Path) -> None:
    body = """\
    op.create_table('things', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('email', sa.Text()))
    op.create_index('ix_things_email', 'things', ['email'], unique=True)
    op.add_column('users', sa.Column('nickname', sa.Text(), nullable=True))
    op.add_column('users', sa.Column('flag', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('users') as b:
        b.add_column(sa.Column('thing_id', sa.Integer(), nullable=True))
        b.create_foreign_key('fk_users_thing', 'things', ['thing_id'], ['id'])
        b.create_index('ix_users_thing_id', ['thing_id'])
        b.alter_column('nickname', nullable=True)
    with op.get_context().autocommit_block():
        op.create_index('ix_users_nickname', 'users', ['nickname'], postgresql_concurrently=True)
    op.execute("UPDATE users SET nickname = username WHERE nickname IS NULL")
"""
    assert _verdict(tmp_path, body) == []
    assert _verdict(tmp_path, body, "sqlite") == []


def test_a_contract_migration_is_marked_with_its_reason(tmp_path: Path) -> None:
    drop = "    op.drop_column('users', 'legacy_email')"
    assert breaches(_sample(tmp_path, drop)) == ["drop_column ('users', 'legacy_email')"]
    reason = 'contract = "users.legacy_email: unused since release 0.4 (read from contacts instead)"'
    assert breaches(_sample(tmp_path, drop, reason)) == []
    assert "naming the release" in breaches(_sample(tmp_path, drop, "contract = True"))[0]
    add = "    op.add_column('users', sa.Column('nickname', sa.Text(), nullable=True))"
    assert breaches(_sample(tmp_path, add, reason)) == ["marked contract but only adds: drop the marker"]
