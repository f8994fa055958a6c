"""Aspect groups: each aspect the feature build met and the head of its near-synonym
group under one encoder revision (portrait.features.aspect_groups), so incremental
builds keep every earlier assignment; heads keep their embedding to compare new
aspects with. Also drops tag_vocabulary: interest tags are aspects now, nothing
reads or writes a TF-IDF vocabulary any more.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aspect_groups",
        sa.Column("encoder_revision", sa.Text, primary_key=True),
        sa.Column("aspect", sa.Text, primary_key=True),
        sa.Column("canonical", sa.Text, nullable=False, comment="the group's head: the form tags show"),
        sa.Column("cosine", sa.Float, nullable=False, comment="to the head when it joined (1 for a head)"),
        sa.Column("embedding", postgresql.ARRAY(sa.REAL), nullable=True, comment="heads only"),
        sa.Column("grouped_at", sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.drop_table("tag_vocabulary")


def downgrade() -> None:
    op.create_table(
        "tag_vocabulary",
        sa.Column("vocabulary_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("fitted_at", sa.TIMESTAMP(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("reviews", sa.BigInteger, nullable=False),
        sa.Column("terms", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("idf", postgresql.ARRAY(sa.Float(precision=53)), nullable=False),
    )
    op.drop_table("aspect_groups")
