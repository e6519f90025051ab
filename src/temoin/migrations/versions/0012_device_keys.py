"""device key history: re-enrolment adds a key, never overwrites one

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 00:00:00
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("enrolled_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("valid_from", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("valid_until", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("certificate", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_device_keys_device_id"), "device_keys", ["device_id"], unique=False)
    # Each camera's key so far becomes its first key (valid since the beginning, until its revocation). Its
    # certificate needs the platform key: issued at the next `temoin serve` / `temoin init` (journaled).
    op.execute(
        "INSERT INTO device_keys (device_id, public_key, enrolled_at, valid_from, valid_until) "
        "SELECT id, public_key, enrolled_at, NULL, revoked_at FROM devices"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_device_keys_device_id"), table_name="device_keys")
    op.drop_table("device_keys")
