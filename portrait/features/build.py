"""Feature jobs: raw tables -> feature tables (Feast's offline store).

Each feature table holds snapshots: one row per entity and time at which its
inputs changed, with the values as of that time, so Feast's point-in-time joins
never see the future. A build is incremental: it embeds only reviews without an
embedding and recomputes only the users and items whose raw rows arrived since
the last build (or fall inside a later --as-of). Compute functions are pure
(DataFrames in and out); the build function does the I/O."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

import numpy as np
import pandas as pd
import sqlalchemy as sa

from portrait.features.aspect_groups import AspectGroups
from portrait.features.compute import (
    REVIEW_LENGTHS_SQL,
    compute_item_stats,
    compute_item_text_profile,
    compute_user_behavior,
    compute_user_text_profile,
)
from portrait.features.embed import embed_new_reviews
from portrait.features.executor import Compute
from portrait.features.tags import aspect_mentions
from portrait.store.sql import frame, replace_snapshots, utc_times
from portrait.text.encoder import Encoder, default_model_path, model_revision, review_text
from portrait.text.labels import ratings_sentiment

log = logging.getLogger(__name__)


# --- user_behavior ----------------------------------------------------------


# --- item_stats ---------------------------------------------------------------


# --- text profiles -------------------------------------------------------------


TEXT_PROFILE_USERS_PER_SLICE = 20_000  # users whose reviews (and embeddings) are in memory at once
TEXT_PROFILE_ITEMS_PER_SLICE = 10_000  # the same for items (11 reviews an item where users have 7)


# --- the build (I/O) -----------------------------------------------------------


@dataclass
class BuildResult:
    as_of: datetime
    reviews_embedded: int
    users_rebuilt: int
    items_rebuilt: int
    rows_written: dict[str, int]

    def summary(self) -> str:
        rows = ", ".join(f"{t} {n:,}" for t, n in self.rows_written.items())
        return (
            f"as of {self.as_of:%Y-%m-%d %H:%M:%S}Z: embedded {self.reviews_embedded:,} reviews, "
            f"rebuilt {self.users_rebuilt:,} users and {self.items_rebuilt:,} items ({rows or 'nothing new'})"
        )


class SentimentLabeler(Protocol):
    """Labels reviews (a frame with rating, summary and text) with a sentiment class;
    `source` says where the labels come from (stored with the text profiles)."""

    source: str

    def __call__(self, reviews: pd.DataFrame) -> pd.Series: ...


class RatingsSentiment:
    """Sentiment labels from star ratings (before any model is promoted)."""

    source = "ratings"

    def __call__(self, reviews: pd.DataFrame) -> pd.Series:
        return ratings_sentiment(reviews["rating"])


EMBEDDED_SQL = """
    SELECT r.review_id, r.user_id, r.item_id, r.event_timestamp, r.rating, r.summary, r.text, e.embedding
    FROM reviews r JOIN review_embeddings e USING (review_id)
    WHERE r.event_timestamp <= :as_of AND r.placeholder IS NULL AND {cond}"""  # placeholders: no text features


def rebuild_items(conn, items: Sequence[str], as_of: datetime, compute: Compute | None = None) -> dict[str, int]:
    """Recompute the items' snapshots (item_stats, item_text_profile) up to as_of
    from the reviews there are now: after new reviews, and after `portrait forget`
    took a user's reviews out. Returns rows written per table."""
    compute = compute or Compute()
    all_reviews = utc_times(
        frame(conn, "SELECT item_id, event_timestamp, rating FROM reviews WHERE event_timestamp <= :as_of", as_of=as_of)
    )
    rows = {
        "item_stats": replace_snapshots(
            conn, "item_stats", "item_id", items, compute_item_stats(all_reviews, set(items)), as_of
        )
    }
    rows["item_text_profile"] = 0
    # in slices of items: a full build must not hold every review's embedding at once
    items = list(items)
    for start in range(0, len(items), TEXT_PROFILE_ITEMS_PER_SLICE):
        part = items[start : start + TEXT_PROFILE_ITEMS_PER_SLICE]
        by_item = utc_times(frame(conn, EMBEDDED_SQL.format(cond="r.item_id = ANY(:i)"), as_of=as_of, i=part))
        by_item["embedding"] = by_item["embedding"].map(np.asarray)
        rows["item_text_profile"] += replace_snapshots(
            conn,
            "item_text_profile",
            "item_id",
            part,
            compute.by_entity(compute_item_text_profile, "item_id", by_item),
            as_of,
        )
    return rows


@dataclass
class Changes:
    """What a build recomputes: the entities whose inputs changed since the last build
    (or whose sentiment source did), and the watermark it will record."""

    users: list[str]
    items: list[str]
    max_review_id: int
    max_event_id: int


def changed_entities(conn, as_of: datetime, sentiment_source: str) -> Changes:
    """Users and items with raw rows new since the last build (or newly inside as_of),
    re-embedded reviews, reviews whose placeholder flag changed, and users whose profile
    has another sentiment source."""
    last = conn.execute(
        sa.text(
            "SELECT last_review_id, last_event_id, as_of, finished_at FROM feature_builds "
            "ORDER BY build_id DESC LIMIT 1"
        )
    ).first()
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    last_review_id, last_event_id, last_as_of, last_finished = last if last else (0, 0, epoch, epoch)
    max_review_id = conn.execute(sa.text("SELECT coalesce(max(review_id), 0) FROM reviews")).scalar()
    max_event_id = conn.execute(sa.text("SELECT coalesce(max(event_id), 0) FROM events")).scalar()
    params = {
        "rid": last_review_id,
        "eid": last_event_id,
        "last_as_of": last_as_of,
        "as_of": as_of,
        "last_finished": last_finished,
        "source": sentiment_source,
    }
    new_rows = "(({id} > :{p} OR event_timestamp > :last_as_of) AND event_timestamp <= :as_of)"
    users = (
        conn.execute(
            sa.text(f"""
        SELECT user_id FROM user_text_profile WHERE sentiment_source <> :source
        UNION SELECT user_id FROM reviews WHERE {new_rows.format(id="review_id", p="rid")}
        UNION SELECT user_id FROM events WHERE event_type <> 'review' AND {new_rows.format(id="event_id", p="eid")}
        UNION SELECT user_id FROM review_embeddings WHERE created_timestamp > :last_finished
        UNION SELECT user_id FROM reviews WHERE placeholder_at > :last_finished"""),
            params,
        )
        .scalars()
        .all()
    )
    items = (
        conn.execute(
            sa.text(f"""
        SELECT item_id FROM reviews WHERE {new_rows.format(id="review_id", p="rid")}
        UNION SELECT item_id FROM review_embeddings WHERE created_timestamp > :last_finished
        UNION SELECT item_id FROM reviews WHERE placeholder_at > :last_finished"""),
            params,
        )
        .scalars()
        .all()
    )
    return Changes(list(users), list(items), max_review_id, max_event_id)


def rebuild_user_behavior(conn, users: list[str], as_of: datetime, compute: Compute) -> int:
    """New user_behavior snapshots of these users as of as_of; returns the rows written."""
    reviews = utc_times(
        frame(
            conn,
            f"""
        SELECT user_id, event_timestamp, rating, helpful_votes, total_votes, {REVIEW_LENGTHS_SQL}
        FROM reviews WHERE user_id = ANY(:u) AND event_timestamp <= :as_of""",
            u=users,
            as_of=as_of,
        )
    )
    events = utc_times(
        frame(
            conn,
            """
        SELECT user_id, event_timestamp, event_type, quantity, amount FROM events
        WHERE event_type <> 'review' AND user_id = ANY(:u) AND event_timestamp <= :as_of""",
            u=users,
            as_of=as_of,
        )
    )
    events["amount"] = events["amount"].astype(float)
    return replace_snapshots(
        conn,
        "user_behavior",
        "user_id",
        users,
        compute.by_entity(compute_user_behavior, "user_id", reviews, events),
        as_of,
    )


def rebuild_user_text_profiles(
    conn, users: list[str], as_of: datetime, compute: Compute, sentiment: SentimentLabeler, groups: AspectGroups
) -> int:
    """New user_text_profile snapshots (embedding mean, sentiment shares, aspect tags, each
    aspect as its near-synonym group's head), in slices of users: a full build must not
    hold every review's embedding at once."""

    written = 0
    for start in range(0, len(users), TEXT_PROFILE_USERS_PER_SLICE):
        part = users[start : start + TEXT_PROFILE_USERS_PER_SLICE]
        by_user = utc_times(frame(conn, EMBEDDED_SQL.format(cond="r.user_id = ANY(:u)"), as_of=as_of, u=part))
        by_user["embedding"] = by_user["embedding"].map(np.asarray)
        by_user["text"] = [review_text(s, t) for s, t in zip(by_user["summary"], by_user["text"])]
        by_user["sentiment"] = np.asarray(sentiment(by_user)) if len(by_user) else []
        by_user["aspects"] = groups.merge(aspect_mentions(by_user, sentiment)) if len(by_user) else []
        written += replace_snapshots(
            conn,
            "user_text_profile",
            "user_id",
            part,
            compute.by_entity(compute_user_text_profile, "user_id", by_user, sentiment_source=sentiment.source),
            as_of,
        )
    return written


def _record_watermark(conn, as_of: datetime, changes: Changes, embedded: int) -> None:
    conn.execute(
        sa.text("""
        INSERT INTO feature_builds (as_of, last_review_id, last_event_id, users_rebuilt, items_rebuilt, reviews_embedded)
        VALUES (:as_of, :rid, :eid, :users, :items, :embedded)"""),
        {
            "as_of": as_of,
            "rid": changes.max_review_id,
            "eid": changes.max_event_id,
            "users": len(changes.users),
            "items": len(changes.items),
            "embedded": embedded,
        },
    )


def build_features(
    engine: sa.Engine,
    *,
    as_of: datetime | None = None,
    encoder_path: str | None = None,
    sentiment: SentimentLabeler | None = None,
    progress: bool = True,
    compute: Compute | None = None,
) -> BuildResult:
    """Incremental, idempotent feature build up to as_of (default now): changed
    entities -> their new snapshots -> the watermark. `sentiment` labels reviews for
    the text profiles (default: from ratings); when its source differs from the one
    the profiles were built with, every user's profile is rebuilt. `compute` says
    where the per-entity compute runs (default: PORTRAIT_ENGINE's)."""
    from pathlib import Path

    as_of = (as_of or datetime.now(timezone.utc)).astimezone(timezone.utc)
    model_path = encoder_path or str(default_model_path())
    revision = model_revision(Path(model_path))
    sentiment = sentiment or RatingsSentiment()
    if compute is None:
        from portrait.settings import get_settings

        compute = Compute.of(get_settings())
    rows: dict[str, int] = {}
    lock = sa.text("SELECT pg_advisory_xact_lock(hashtext('portrait.features.build'))")
    # 1. embeddings, committed on their own: the slow part is never redone
    with engine.begin() as conn:
        conn.execute(lock)  # one build at a time; a second waits
        rows_embedded = embed_new_reviews(conn, model_path, revision, as_of, progress)
    if rows_embedded:
        rows["review_embeddings"] = rows_embedded

    # 2. snapshots of the entities whose inputs changed, and the new watermark, in one transaction
    with engine.begin() as conn:
        conn.execute(lock)
        changes = changed_entities(conn, as_of, sentiment.source)
        if changes.users:
            rows["user_behavior"] = rebuild_user_behavior(conn, changes.users, as_of, compute)
        if changes.items:
            rows.update(rebuild_items(conn, changes.items, as_of, compute))
        if changes.users:
            groups = AspectGroups(conn, revision, lambda: Encoder.load(model_path).embed)  # loaded for new aspects only
            rows["user_text_profile"] = rebuild_user_text_profiles(
                conn, changes.users, as_of, compute, sentiment, groups
            )
        _record_watermark(conn, as_of, changes, rows_embedded)
    return BuildResult(as_of, rows_embedded, len(changes.users), len(changes.items), rows)
