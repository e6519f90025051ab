"""Background jobs: the status table of every job, and on PostgreSQL procrastinate's own tables

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 04:00:00

procrastinate's schema is applied here, by the same `temoin init` / upgrade that builds ours, so one command and
one version line describe the whole database (and a backup restores it whole). A later procrastinate release
that changes its schema comes with its migration SQL files (procrastinate/sql/migrations/): the upgrade that
raises the pinned version applies them in a new revision of ours.
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("queue_job_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_tenant_created", "jobs", ["tenant_id", "created_at"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        # The raw psycopg connection, in the migration's transaction: no parameters, so its '%' stay as they are.
        raw = bind.connection.driver_connection
        assert raw is not None, "a migration runs on an open connection"
        raw.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_created", table_name="jobs")
    op.drop_table("jobs")
