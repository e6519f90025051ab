"""A "next release" for the tests of mixed versions: this code's migrations plus extra ones written to a folder,
found through Alembic's version_locations (nothing in src knows about them)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from temoin.migrate import MIGRATIONS, alembic_config

# An expand migration as a release would write it: a nullable column, a required one with a server default, a
# table, and an index built without blocking writes on PostgreSQL.
EXPAND = """\
    op.add_column("tenants", sa.Column("motto", sa.Text(), nullable=True))
    op.add_column("tenants", sa.Column("tier", sa.String(16), nullable=False, server_default="standard"))
    op.create_table("next_release_notes", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("text", sa.Text()))
    with op.get_context().autocommit_block():
        op.create_index("ix_tenants_motto", "tenants", ["motto"], postgresql_concurrently=True)
"""


def head() -> str:
    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert found is not None
    return found


def migration_source(revision: str, down_revision: str, body: str, contract: str | None = None) -> str:
    marker = f"contract = {contract!r}\n" if contract else ""
    return (
        f'"""A next release\'s migration (test)."""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f"revision = {revision!r}\ndown_revision = {down_revision!r}\nbranch_labels = None\ndepends_on = None\n"
        f"{marker}\n\ndef upgrade() -> None:\n{body}\n\n\ndef downgrade() -> None:\n    pass\n"
    )


def write_migrations(folder: Path, *bodies: str) -> list[str]:
    """Migrations 9001, 9002... after this code's head, one per body; their revisions."""
    folder.mkdir(parents=True, exist_ok=True)
    previous, revisions = head(), []
    for n, body in enumerate(bodies, start=9001):
        revision = str(n)
        (folder / f"{revision}_next_release.py").write_text(migration_source(revision, previous, body))
        previous = revision
        revisions.append(revision)
    return revisions


def next_release(folder: Path, *bodies: str) -> Config:
    """Alembic's configuration of a release that adds these migrations to this code's."""
    write_migrations(folder, *bodies)
    cfg = alembic_config()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join([str(MIGRATIONS / "versions"), str(folder)]))
    return cfg
