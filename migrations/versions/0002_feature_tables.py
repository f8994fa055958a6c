"""Feature tables (Feast's offline store) and the feature build watermarks.

Feature names are unique across the tables, so that feature services can
combine views without prefixes. Every feature row carries event_timestamp (when the value became true) and
created_timestamp (when it was computed), so Feast's point-in-time joins are
correct and late recomputations win ties.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
VECTOR = postgresql.ARRAY(sa.REAL)


def _times():
    return [
        sa.Column("event_timestamp", TS, nullable=False),
        sa.Column("created_timestamp", TS, nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.create_table(
        "user_behavior",
        sa.Column("user_id", sa.Text, nullable=False),
        *_times(),
        sa.Column("review_count_30d", sa.Integer, nullable=False),
        sa.Column("review_count_90d", sa.Integer, nullable=False),
        sa.Column("review_count_365d", sa.Integer, nullable=False),
        sa.Column("review_count_total", sa.Integer, nullable=False),
        sa.Column("rating_mean", sa.REAL),
        sa.Column("rating_std", sa.REAL),
        sa.Column("low_rating_share", sa.REAL),
        sa.Column("helpful_ratio", sa.REAL),
        sa.Column("review_length_mean", sa.REAL),
        sa.Column("days_since_prev_activity", sa.REAL),
        sa.Column("last_activity_unix", sa.BigInteger, nullable=False),
        sa.Column("purchase_count", sa.Integer, nullable=False),
        sa.Column("purchase_quantity_total", sa.Integer, nullable=False),
        sa.Column("purchase_monetary_total", sa.REAL, nullable=False),
        sa.Column("purchase_monetary_mean", sa.REAL),
        sa.Column("purchase_frequency_30d", sa.REAL, comment="purchases per 30 days since the first purchase"),
        sa.Column("last_purchase_unix", sa.BigInteger),
        sa.Column("view_count", sa.Integer, nullable=False),
        sa.Column("cart_count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "event_timestamp"),
    )
    op.create_table(
        "item_stats",
        sa.Column("item_id", sa.Text, nullable=False),
        *_times(),
        sa.Column("item_review_count", sa.Integer, nullable=False),
        sa.Column("item_rating_mean", sa.REAL, nullable=False),
        sa.Column("item_rating_trend", sa.REAL, comment="mean rating of the last 90 days minus the mean before"),
        sa.Column("item_popularity_rank", sa.Integer, nullable=False, comment="1 = most reviewed item as of event_timestamp"),
        sa.PrimaryKeyConstraint("item_id", "event_timestamp"),
    )
    op.create_table(
        "review_embeddings",
        sa.Column("review_id", sa.BigInteger, sa.ForeignKey("reviews.review_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("item_id", sa.Text, nullable=False),
        *_times(),
        sa.Column("embedding", VECTOR, nullable=False, comment="L2-normalized"),
        sa.Column("encoder", sa.Text, nullable=False),
        sa.Column("encoder_revision", sa.Text, nullable=False),
    )
    op.create_index("ix_review_embeddings_user", "review_embeddings", ["user_id"])
    op.create_index("ix_review_embeddings_item", "review_embeddings", ["item_id"])
    op.create_table(
        "user_text_profile",
        sa.Column("user_id", sa.Text, nullable=False),
        *_times(),
        sa.Column("embedded_review_count", sa.Integer, nullable=False),
        sa.Column("user_embedding", VECTOR, nullable=False, comment="mean of the user's review embeddings"),
        sa.Column("share_positive", sa.REAL, nullable=False),
        sa.Column("share_neutral", sa.REAL, nullable=False),
        sa.Column("share_negative", sa.REAL, nullable=False),
        sa.Column("sentiment_source", sa.Text, nullable=False, comment="'ratings' or 'model:review-sentiment/VERSION'"),
        sa.Column("interest_tags", sa.Text, nullable=False, comment="the user's most characteristic terms, comma-separated"),
        sa.PrimaryKeyConstraint("user_id", "event_timestamp"),
    )
    op.create_table(
        "item_text_profile",
        sa.Column("item_id", sa.Text, nullable=False),
        *_times(),
        sa.Column("item_embedded_review_count", sa.Integer, nullable=False),
        sa.Column("item_embedding", VECTOR, nullable=False, comment="mean of the item's review embeddings"),
        sa.PrimaryKeyConstraint("item_id", "event_timestamp"),
    )
    op.create_table(
        "feature_builds",
        sa.Column("build_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("as_of", TS, nullable=False),
        sa.Column("last_review_id", sa.BigInteger, nullable=False),
        sa.Column("last_event_id", sa.BigInteger, nullable=False),
        sa.Column("users_rebuilt", sa.Integer, nullable=False),
        sa.Column("items_rebuilt", sa.Integer, nullable=False),
        sa.Column("reviews_embedded", sa.Integer, nullable=False),
        sa.Column("finished_at", TS, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in ("feature_builds", "item_text_profile", "user_text_profile", "review_embeddings",
                  "item_stats", "user_behavior"):
        op.drop_table(table)
