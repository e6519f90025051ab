"""extractions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "extractions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recipient_name", sa.String(length=200), nullable=False),
        sa.Column("recipient_kind", sa.String(length=32), nullable=False),
        sa.Column("procedure_type", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("recording_ids", sa.JSON(), nullable=False),
        sa.Column("trim", sa.JSON(), nullable=True),
        sa.Column("media_kind", sa.String(length=16), nullable=False),
        sa.Column("package_path", sa.String(length=500), nullable=True),
        sa.Column("package_sha256", sa.String(length=64), nullable=False),
        sa.Column("package_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sums_sha256", sa.String(length=64), nullable=False),
        sa.Column("expires_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("package_deleted_at", temoin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("redacted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_extractions_created_by_users")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_extractions_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_extractions")),
    )
    with op.batch_alter_table("extractions", schema=None) as batch_op:
        batch_op.create_index("ix_extractions_expires", ["expires_at"], unique=False)
        batch_op.create_index("ix_extractions_tenant_created", ["tenant_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("extractions", schema=None) as batch_op:
        batch_op.drop_index("ix_extractions_tenant_created")
        batch_op.drop_index("ix_extractions_expires")

    op.drop_table("extractions")
