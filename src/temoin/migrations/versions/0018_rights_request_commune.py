"""EPCI: the commune each rights request belongs to

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rights_requests") as batch:
        batch.add_column(sa.Column("commune", sa.String(length=16), nullable=True))
        batch.create_index("ix_rights_requests_commune", ["commune"])


def downgrade() -> None:
    with op.batch_alter_table("rights_requests") as batch:
        batch.drop_index("ix_rights_requests_commune")
        batch.drop_column("commune")
