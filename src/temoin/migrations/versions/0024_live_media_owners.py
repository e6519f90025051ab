"""Live media across nodes: which node owns each live stream (and CCTV viewing), under a lease

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 06:30:00
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_media_owners",
        sa.Column("stream", sa.String(length=160), nullable=False),
        sa.Column("node_url", sa.String(length=255), nullable=False),
        sa.Column("claimed_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_live_media_owners")),
    )
    with op.batch_alter_table("live_media_owners", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_live_media_owners_node_url"), ["node_url"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("live_media_owners", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_live_media_owners_node_url"))
    op.drop_table("live_media_owners")
