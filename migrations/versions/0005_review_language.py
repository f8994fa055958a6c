"""The language of each review (ISO 639-1, detected at ingest).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reviews",
        sa.Column("language", sa.Text, nullable=True, comment="ISO 639-1 of summary + text; NULL without letters (or loaded before 0005)"),
    )


def downgrade() -> None:
    op.drop_column("reviews", "language")
