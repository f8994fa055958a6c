"""A content hash on each review embedding: identical texts (re-posted reviews,
templated ones, resampled benchmark shops) are embedded once per encoder revision
and the embedding is reused. Rows embedded before this revision have no hash and are
simply not reused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "review_embeddings",
        sa.Column("text_hash", postgresql.BYTEA, comment="sha256 (first 16 bytes) of the embedded text"),
    )
    op.create_index("ix_review_embeddings_text_hash", "review_embeddings", ["encoder_revision", "text_hash"])


def downgrade() -> None:
    op.drop_index("ix_review_embeddings_text_hash", table_name="review_embeddings")
    op.drop_column("review_embeddings", "text_hash")
