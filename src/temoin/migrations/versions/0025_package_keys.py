"""Extraction packages sealed in the blob store: each package's data key, wrapped by the master key

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 06:00:00

A package made before has no key: it is the plaintext zip under TEMOIN_HOME it always was, still served from
there until it expires (vault.artefact_blobs reads both).
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("extractions") as batch:
        batch.add_column(sa.Column("package_key", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("extractions") as batch:
        batch.drop_column("package_key")
