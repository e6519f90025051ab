"""Axis Body Worn content destination: connections, containers, objects

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from temoin.db import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "axis_connections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("public_key_id", sa.String(length=128), nullable=False, unique=True),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("wrapped_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("master_key_id", sa.String(length=32), nullable=False),
        sa.Column("want_encryption", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_axis_connections_tenant_id", "axis_connections", ["tenant_id"])
    op.create_table(
        "axis_containers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("storage_id", sa.String(length=128), nullable=False, unique=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("recording_id", sa.String(length=128), sa.ForeignKey("recordings.id"), nullable=True),
        sa.Column("next_slot", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", UTCDateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    op.create_index("ix_axis_containers_tenant_id", "axis_containers", ["tenant_id"])
    op.create_index("ix_axis_containers_recording_id", "axis_containers", ["recording_id"])
    op.create_table(
        "axis_objects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "container_id", sa.Integer(), sa.ForeignKey("axis_containers.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("device_id", sa.String(length=128), sa.ForeignKey("devices.id"), nullable=True),
        sa.UniqueConstraint("container_id", "name"),
    )
    op.create_index("ix_axis_objects_container_id", "axis_objects", ["container_id"])


def downgrade() -> None:
    op.drop_table("axis_objects")
    op.drop_table("axis_containers")
    op.drop_table("axis_connections")
