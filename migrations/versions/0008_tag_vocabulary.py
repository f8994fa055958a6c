"""The interest-tag vocabulary (TF-IDF terms and their IDF) the feature build fitted,
kept so that an incremental build reuses it until the corpus has grown enough to
move it, instead of re-reading every review's text for 1% new ones.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tag_vocabulary",
        sa.Column("vocabulary_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("fitted_at", sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("reviews", sa.BigInteger, nullable=False, comment="reviews in the corpus it was fitted on"),
        sa.Column("terms", postgresql.ARRAY(sa.Text), nullable=False, comment="empty: the corpus had no usable terms"),
        sa.Column("idf", postgresql.ARRAY(sa.Float(precision=53)), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tag_vocabulary")
