"""rights requests

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rights_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("person_description", sa.Text(), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("facts_start", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("facts_end", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("place_lat", sa.Float(), nullable=True),
        sa.Column("place_lon", sa.Float(), nullable=True),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.Column("agent_ref", sa.String(length=128), nullable=True),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("procedure_reference", sa.String(length=200), nullable=True),
        sa.Column("erased", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_rights_requests_created_by_users")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_rights_requests_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rights_requests")),
    )
    op.create_index("ix_rights_requests_tenant_received", "rights_requests", ["tenant_id", "received_on"], unique=False)
    op.create_table(
        "redacted_copies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tracks", sa.JSON(), nullable=False),
        sa.Column("keep_tracks", sa.JSON(), nullable=False),
        sa.Column("add_regions", sa.JSON(), nullable=False),
        sa.Column("data_key", sa.LargeBinary(), nullable=True),
        sa.Column("folder", sa.String(length=255), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("produced_at", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.Column("delivered_at", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_redacted_copies_created_by_users")),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"], name=op.f("fk_redacted_copies_recording_id_recordings")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["rights_requests.id"], name=op.f("fk_redacted_copies_request_id_rights_requests")
        ),
        sa.ForeignKeyConstraint(["reviewed_by"], ["users.id"], name=op.f("fk_redacted_copies_reviewed_by_users")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_redacted_copies_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redacted_copies")),
    )
    op.create_index(op.f("ix_redacted_copies_recording_id"), "redacted_copies", ["recording_id"], unique=False)
    op.create_index(op.f("ix_redacted_copies_request_id"), "redacted_copies", ["request_id"], unique=False)
    op.create_index(op.f("ix_redacted_copies_tenant_id"), "redacted_copies", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_redacted_copies_tenant_id"), table_name="redacted_copies")
    op.drop_index(op.f("ix_redacted_copies_request_id"), table_name="redacted_copies")
    op.drop_index(op.f("ix_redacted_copies_recording_id"), table_name="redacted_copies")
    op.drop_table("redacted_copies")
    op.drop_index("ix_rights_requests_tenant_received", table_name="rights_requests")
    op.drop_table("rights_requests")
