"""Security: usernames per tenant, credential life cycle, token scopes, sign-in throttling by address and
known device, four-eyes erasure and copy approval

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10 00:00:00
"""

import sqlalchemy as sa
from alembic import op

from temoin.db import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_username", type_="unique")
        batch.create_unique_constraint("uq_users_tenant_id", ["tenant_id", "username"])
        batch.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("password_changed_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deactivated_at", UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.alter_column("must_change_password", server_default=None)
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
    with op.batch_alter_table("login_attempts") as batch:
        batch.alter_column(
            "username", type_=sa.String(length=200), existing_type=sa.String(length=64), existing_nullable=False
        )
        batch.add_column(sa.Column("factor", sa.String(length=8), nullable=False, server_default="password"))
        batch.add_column(sa.Column("device", sa.String(length=64), nullable=True))
        batch.create_index("ix_login_attempts_address", ["address"])
        batch.create_index("ix_login_attempts_device", ["device"])
    with op.batch_alter_table("login_attempts") as batch:
        batch.alter_column("factor", server_default=None)
    with op.batch_alter_table("redacted_copies") as batch:
        batch.add_column(sa.Column("redacted_by", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_redacted_copies_redacted_by_users", "users", ["redacted_by"], ["id"])
    op.create_table(
        "erasure_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("recording_ids", sa.JSON(), nullable=False),
        sa.Column("justifications", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("proposed_by", sa.Integer(), nullable=False),
        sa.Column("proposed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_erasure_proposals_tenant_id_tenants")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["rights_requests.id"], name=op.f("fk_erasure_proposals_request_id_rights_requests")
        ),
        sa.ForeignKeyConstraint(["proposed_by"], ["users.id"], name=op.f("fk_erasure_proposals_proposed_by_users")),
        sa.ForeignKeyConstraint(["decided_by"], ["users.id"], name=op.f("fk_erasure_proposals_decided_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_proposals")),
    )
    with op.batch_alter_table("erasure_proposals") as batch:
        batch.create_index("ix_erasure_proposals_tenant_id", ["tenant_id"])
        batch.create_index("ix_erasure_proposals_request_id", ["request_id"])


def downgrade() -> None:
    op.drop_table("erasure_proposals")
    with op.batch_alter_table("redacted_copies") as batch:
        batch.drop_constraint("fk_redacted_copies_redacted_by_users", type_="foreignkey")
        batch.drop_column("redacted_by")
    with op.batch_alter_table("login_attempts") as batch:
        batch.drop_index("ix_login_attempts_device")
        batch.drop_index("ix_login_attempts_address")
        batch.drop_column("device")
        batch.drop_column("factor")
        batch.alter_column("username", type_=sa.String(length=64), existing_type=sa.String(length=200))
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("scopes")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("deactivated_at")
        batch.drop_column("password_changed_at")
        batch.drop_column("must_change_password")
        batch.drop_constraint("uq_users_tenant_id", type_="unique")
        batch.create_unique_constraint("uq_users_username", ["username"])
