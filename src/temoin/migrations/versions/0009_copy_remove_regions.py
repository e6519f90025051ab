"""redacted copies: regions left clear by hand (false detections)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("redacted_copies") as batch:
        batch.add_column(sa.Column("remove_regions", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("redacted_copies") as batch:
        batch.drop_column("remove_regions")
