"""Blob folders whose removal is decided and not yet done (the retention sweep's pending deletions)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 03:00:00
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_blob_deletions",
        sa.Column("prefix", sa.String(length=300), nullable=False),
        sa.Column("recorded_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_pending_blob_deletions")),
    )


def downgrade() -> None:
    op.drop_table("pending_blob_deletions")
