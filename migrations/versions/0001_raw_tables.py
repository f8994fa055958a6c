"""Raw tables: users, items, reviews, events, ingest_runs, ingest_rejects.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingest_runs",
        sa.Column("run_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("source", sa.Text, nullable=False, comment="amazon-reviews | purchases | events"),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("rows_read", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_duplicate", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("status IN ('running', 'done', 'failed')", name="ck_ingest_runs_status"),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.Text, primary_key=True, comment="keyed-HMAC pseudonym, never the shop's id"),
        sa.Column("first_seen_at", TS, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("item_id", sa.Text, primary_key=True),
        sa.Column("first_seen_at", TS, nullable=False),
    )
    op.create_table(
        "reviews",
        sa.Column("review_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
        sa.Column("item_id", sa.Text, sa.ForeignKey("items.item_id"), nullable=False),
        sa.Column("rating", sa.SmallInteger, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("helpful_votes", sa.Integer, nullable=False),
        sa.Column("total_votes", sa.Integer, nullable=True, comment="NULL where the source counts only helpful votes (Amazon 2018)"),
        sa.Column("event_timestamp", TS, nullable=False),
        sa.Column("run_id", sa.BigInteger, nullable=False, comment="ingest_runs.run_id (no FK: checking it per row halves COPY speed)"),
        sa.Column("ingested_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_reviews_rating"),
        sa.UniqueConstraint("user_id", "item_id", name="uq_reviews_user_item"),
    )
    op.create_index("ix_reviews_item_time", "reviews", ["item_id", "event_timestamp"])
    op.create_table(
        "events",
        sa.Column("event_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_key", sa.Text, nullable=False, unique=True, comment="natural key: re-ingest loads nothing twice"),
        sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
        sa.Column("item_id", sa.Text, nullable=True, comment="NULL where the source has no items (CDNOW)"),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=True),
        sa.Column("amount", sa.Numeric(12, 2), nullable=True),
        sa.Column("event_timestamp", TS, nullable=False),
        sa.Column("run_id", sa.BigInteger, nullable=False, comment="ingest_runs.run_id (no FK: checking it per row halves COPY speed)"),
        sa.Column("ingested_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("event_type IN ('view', 'cart', 'purchase', 'review')", name="ck_events_type"),
    )
    op.create_index("ix_events_user_time", "events", ["user_id", "event_timestamp"])
    op.create_table(
        "ingest_rejects",
        sa.Column("reject_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("run_id", sa.BigInteger, sa.ForeignKey("ingest_runs.run_id"), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("line_number", sa.BigInteger, nullable=False),
        sa.Column("raw", sa.Text, nullable=False, comment="the line as read, user id pseudonymized, name dropped, contacts masked"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("rejected_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_ingest_rejects_run", "ingest_rejects", ["run_id"])


def downgrade() -> None:
    for table in ("ingest_rejects", "events", "reviews", "items", "users", "ingest_runs"):
        op.drop_table(table)
