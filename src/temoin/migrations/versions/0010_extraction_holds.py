"""holds placed by a procedure extraction name it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.add_column(sa.Column("extraction_id", sa.String(length=40), nullable=True))
        batch.create_foreign_key("fk_holds_extraction_id_extractions", "extractions", ["extraction_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.drop_constraint("fk_holds_extraction_id_extractions", type_="foreignkey")
        batch.drop_column("extraction_id")
