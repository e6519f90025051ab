"""journal seals: RFC 3161 timestamp token

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("journal_checkpoints") as batch:
        batch.add_column(sa.Column("timestamp_token", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("journal_checkpoints") as batch:
        batch.drop_column("timestamp_token")
