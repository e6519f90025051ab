"""Live: WHIP bearer tokens, one or more per camera, for standard encoders (RFC 9725)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from temoin.db import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_publish_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_live_publish_tokens_device_id_devices")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_live_publish_tokens_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_publish_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_live_publish_tokens_token_hash")),
    )
    with op.batch_alter_table("live_publish_tokens") as batch:
        batch.create_index(batch.f("ix_live_publish_tokens_device_id"), ["device_id"], unique=False)
        batch.create_index(batch.f("ix_live_publish_tokens_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("live_publish_tokens")
