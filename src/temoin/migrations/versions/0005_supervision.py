"""supervision: CCTV registry

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cctv_cameras",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("height_m", sa.Float(), nullable=False),
        sa.Column("heading_deg", sa.Float(), nullable=False),
        sa.Column("fov_deg", sa.Float(), nullable=False),
        sa.Column("range_m", sa.Float(), nullable=False),
        sa.Column("ptz", sa.Boolean(), nullable=False),
        sa.Column("max_zoom", sa.Float(), nullable=False),
        sa.Column("stream_url", sa.String(length=500), nullable=False),
        sa.Column("onvif_url", sa.String(length=500), nullable=True),
        sa.Column("onvif_username", sa.String(length=128), nullable=True),
        sa.Column("onvif_password_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_cctv_cameras_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_cctv_cameras")),
    )
    op.create_table(
        "cctv_registry_versions",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_cctv_registry_versions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_cctv_registry_versions")),
    )


def downgrade() -> None:
    op.drop_table("cctv_registry_versions")
    op.drop_table("cctv_cameras")
