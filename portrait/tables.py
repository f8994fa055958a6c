"""The raw tables as SQLAlchemy Core metadata. migrations/ creates them; this
module mirrors the head revision (a unit test compares the two)."""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

EVENT_TYPES = ("view", "cart", "purchase", "review")
RUN_STATUSES = ("running", "done", "failed")

users = sa.Table(
    "users", metadata,
    sa.Column("user_id", sa.Text, primary_key=True, comment="keyed-HMAC pseudonym, never the shop's id"),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
)

items = sa.Table(
    "items", metadata,
    sa.Column("item_id", sa.Text, primary_key=True),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
)

reviews = sa.Table(
    "reviews", metadata,
    sa.Column("review_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    sa.Column("item_id", sa.Text, sa.ForeignKey("items.item_id"), nullable=False),
    sa.Column("rating", sa.SmallInteger, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("helpful_votes", sa.Integer, nullable=False),
    sa.Column("total_votes", sa.Integer, nullable=True, comment="NULL where the source counts only helpful votes (Amazon 2018)"),
    sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.BigInteger, nullable=False, comment="ingest_runs.run_id (no FK: checking it per row halves COPY speed)"),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_reviews_rating"),
    sa.UniqueConstraint("user_id", "item_id", name="uq_reviews_user_item"),
)
sa.Index("ix_reviews_item_time", reviews.c.item_id, reviews.c.event_timestamp)

events = sa.Table(
    "events", metadata,
    sa.Column("event_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_key", sa.Text, nullable=False, unique=True, comment="natural key: re-ingest loads nothing twice"),
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    sa.Column("item_id", sa.Text, nullable=True, comment="NULL where the source has no items (CDNOW)"),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=True),
    sa.Column("amount", sa.Numeric(12, 2), nullable=True),
    sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.BigInteger, nullable=False, comment="ingest_runs.run_id (no FK: checking it per row halves COPY speed)"),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("event_type IN ('view', 'cart', 'purchase', 'review')", name="ck_events_type"),
)
sa.Index("ix_events_user_time", events.c.user_id, events.c.event_timestamp)

ingest_runs = sa.Table(
    "ingest_runs", metadata,
    sa.Column("run_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("source", sa.Text, nullable=False, comment="amazon-reviews | purchases | events"),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("rows_read", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_duplicate", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint("status IN ('running', 'done', 'failed')", name="ck_ingest_runs_status"),
)

ingest_rejects = sa.Table(
    "ingest_rejects", metadata,
    sa.Column("reject_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("run_id", sa.BigInteger, sa.ForeignKey("ingest_runs.run_id"), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("line_number", sa.BigInteger, nullable=False),
    sa.Column("raw", sa.Text, nullable=False, comment="the line as read, user id pseudonymized, name dropped, contacts masked"),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
sa.Index("ix_ingest_rejects_run", ingest_rejects.c.run_id)
