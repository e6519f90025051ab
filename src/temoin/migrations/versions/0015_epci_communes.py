"""EPCI: the commune of each recording, and users limited to some communes

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("commune", sa.String(length=16), nullable=True))
        batch.create_index("ix_recordings_commune", ["commune"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("communes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("communes")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_index("ix_recordings_commune")
        batch.drop_column("commune")
