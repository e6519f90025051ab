"""dispatch: agents' positions, reinforcement orders

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_positions",
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("fix_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_agent_positions_device_id_devices")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_agent_positions_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_agent_positions_user_id_users")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_agent_positions")),
    )
    with op.batch_alter_table("agent_positions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_positions_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "reinforcement_orders",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("target_lat", sa.Float(), nullable=False),
        sa.Column("target_lon", sa.Float(), nullable=False),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("eta_s", sa.Float(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("sent_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_by", sa.String(length=64), nullable=False),
        sa.Column("acknowledged_at", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("arrived_at", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.String(length=64), nullable=True),
        sa.Column("cancel_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_reinforcement_orders_device_id_devices")),
        sa.ForeignKeyConstraint(
            ["session_id"], ["live_sessions.id"], name=op.f("fk_reinforcement_orders_session_id_live_sessions")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_reinforcement_orders_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_reinforcement_orders_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reinforcement_orders")),
    )
    with op.batch_alter_table("reinforcement_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reinforcement_orders_device_id"), ["device_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reinforcement_orders_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reinforcement_orders_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reinforcement_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reinforcement_orders_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_reinforcement_orders_session_id"))
        batch_op.drop_index(batch_op.f("ix_reinforcement_orders_device_id"))

    op.drop_table("reinforcement_orders")
    with op.batch_alter_table("agent_positions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_positions_tenant_id"))

    op.drop_table("agent_positions")
