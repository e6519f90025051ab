"""The incident outlives its live stream: closed by an operator, explicitly

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 00:00:00
"""

import sqlalchemy as sa
from alembic import op

import temoin.db

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("live_sessions") as batch:
        batch.add_column(sa.Column("incident_closed_at", temoin.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("incident_closed_by", sa.String(length=64), nullable=True))
    # Before this revision the end of the stream closed the incident (and recalled its orders).
    op.execute(
        "UPDATE live_sessions SET incident_closed_at = ended_at, incident_closed_by = ended_by WHERE state = 'ended'"
    )


def downgrade() -> None:
    with op.batch_alter_table("live_sessions") as batch:
        batch.drop_column("incident_closed_by")
        batch.drop_column("incident_closed_at")
