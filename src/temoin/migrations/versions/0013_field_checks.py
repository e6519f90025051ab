"""the law in the field: ingest flags and declared values, cameras' pending offloads, limitations and
rectification notes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from temoin.db import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("flags", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("declared_started_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("declared_agent_ref", sa.String(length=128), nullable=True))
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("pending_offload", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("pending_reported_at", UTCDateTime(), nullable=True))
    op.create_table(
        "limitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("placed_by", sa.Integer(), nullable=False),
        sa.Column("placed_at", UTCDateTime(), nullable=False),
        sa.Column("lifted_by", sa.Integer(), nullable=True),
        sa.Column("lifted_at", UTCDateTime(), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"]),
        sa.ForeignKeyConstraint(["request_id"], ["rights_requests.id"]),
        sa.ForeignKeyConstraint(["placed_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["lifted_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("tenant_id", "recording_id", "request_id"):
        op.create_index(f"ix_limitations_{column}", "limitations", [column])
    op.create_table(
        "recording_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("written_by", sa.Integer(), nullable=False),
        sa.Column("written_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"]),
        sa.ForeignKeyConstraint(["request_id"], ["rights_requests.id"]),
        sa.ForeignKeyConstraint(["written_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("tenant_id", "recording_id", "request_id"):
        op.create_index(f"ix_recording_notes_{column}", "recording_notes", [column])


def downgrade() -> None:
    op.drop_table("recording_notes")
    op.drop_table("limitations")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("pending_reported_at")
        batch.drop_column("pending_offload")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("declared_agent_ref")
        batch.drop_column("declared_started_at")
        batch.drop_column("flags")
