"""Placeholder and template reviews (portrait.text.placeholders): a review's `placeholder`
says why its text is not the shopper's (empty, platform default, template; NULL: genuine),
`placeholder_at` when it was flagged (the feature build rebuilds those users and items),
`text_fingerprint` the normalised text's hash the template rule counts by distinct users.
The backfill applies the rule as of this migration to every review already loaded.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reviews",
        sa.Column("placeholder", sa.Text, nullable=True, comment="why the text is not the shopper's; NULL: genuine"),
    )
    op.add_column("reviews", sa.Column("placeholder_at", sa.TIMESTAMP(timezone=True), nullable=True))
    op.add_column(
        "reviews",
        sa.Column("text_fingerprint", postgresql.BYTEA, nullable=True, comment="hash of the normalised text"),
    )
    op.create_check_constraint(
        "ck_reviews_placeholder", "reviews", "placeholder IN ('empty', 'platform default', 'template')"
    )
    op.create_index("ix_reviews_text_fingerprint", "reviews", ["text_fingerprint"])
    # the backfill: the same code `portrait ingest flag` runs (rules, thresholds from the settings)
    from portrait.ingest.flags import reflag_all
    from portrait.settings import get_settings

    reflag_all(op.get_bind(), get_settings())


def downgrade() -> None:
    op.drop_index("ix_reviews_text_fingerprint", table_name="reviews")
    op.drop_constraint("ck_reviews_placeholder", "reviews", type_="check")
    op.drop_column("reviews", "text_fingerprint")
    op.drop_column("reviews", "placeholder_at")
    op.drop_column("reviews", "placeholder")
