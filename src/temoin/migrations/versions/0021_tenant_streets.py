"""A tenant's streets, for its offline basemap, the addresses of positions and the street search

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 01:00:00
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_streets",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("geojson", sa.JSON(), nullable=False),
        sa.Column("street_count", sa.Integer(), nullable=False),
        sa.Column("loaded_at", temoin.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_streets_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_streets")),
    )


def downgrade() -> None:
    op.drop_table("tenant_streets")
