"""journal: how far each chain's checkpoints have reached the witness

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 00:00:00
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal_witness_progress",
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("sent_id", sa.Integer(), nullable=False),
        sa.Column("sent_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("destination", "chain", name=op.f("pk_journal_witness_progress")),
    )


def downgrade() -> None:
    op.drop_table("journal_witness_progress")
