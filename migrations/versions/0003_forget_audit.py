"""Audit of right-to-be-forgotten erasures (no user id is kept).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forget_audit",
        sa.Column("audit_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("rows_deleted", postgresql.JSONB, nullable=False, comment="table -> rows deleted"),
        sa.Column("online_store", sa.Text, nullable=False, comment="what happened in the online store"),
    )


def downgrade() -> None:
    op.drop_table("forget_audit")
