"""Portrait's Feast definitions: entities, sources, feature views, the on-demand
affinity view, the push source and the feature services, grouped by what they
serve. Tables are written by `portrait features build` (PostgreSQL offline store).

Feature names are unique across views, so services combine views without prefixes."""

import os
from datetime import timedelta
from typing import Any

import numpy as np
from feast import Entity, FeatureService, FeatureView, Field, PushSource, RequestSource, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float32, Float64, Int32, Int64, String

# How stale a feature may be for a label (point-in-time joins) and where the first
# `feast materialize-incremental` window starts (now - ttl). The shipped datasets
# end in 2014 and 1998, so the default reaches back 40 years; a shop with live
# data sets PORTRAIT_FEATURE_TTL_DAYS to what its features can bear (e.g. 365).
TTL = timedelta(days=int(os.environ.get("PORTRAIT_FEATURE_TTL_DAYS", "14610")))

# --- entities ---------------------------------------------------------------

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A shopper, by keyed-HMAC pseudonym (never the shop's id)",
)
item = Entity(
    name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="A product (ASIN for the Amazon data)"
)
review = Entity(
    name="review", join_keys=["review_id"], value_type=ValueType.INT64, description="One review (reviews.review_id)"
)


def _source(table: str) -> PostgreSQLSource:
    return PostgreSQLSource(
        name=table, table=table, timestamp_field="event_timestamp", created_timestamp_column="created_timestamp"
    )


# --- the user's portrait ------------------------------------------------------

user_behavior = FeatureView(
    name="user_behavior",
    entities=[user],
    ttl=TTL,
    schema=[
        Field(name="review_count_30d", dtype=Int32),
        Field(name="review_count_90d", dtype=Int32),
        Field(name="review_count_365d", dtype=Int32),
        Field(name="review_count_total", dtype=Int32),
        Field(name="rating_mean", dtype=Float32),
        Field(name="rating_std", dtype=Float32),
        Field(name="low_rating_share", dtype=Float32),
        Field(name="helpful_ratio", dtype=Float32),
        Field(name="review_words_mean", dtype=Float32),  # reviews in space-separated languages
        Field(name="review_chars_mean_zh", dtype=Float32),  # Chinese reviews: characters, not words
        Field(name="days_since_prev_activity", dtype=Float32),
        Field(name="last_activity_unix", dtype=Int64),
        Field(name="purchase_count", dtype=Int32),
        Field(name="purchase_quantity_total", dtype=Int32),
        Field(name="purchase_monetary_total", dtype=Float32),
        Field(name="purchase_monetary_mean", dtype=Float32),
        Field(name="purchase_frequency_30d", dtype=Float32),
        Field(name="last_purchase_unix", dtype=Int64),
        Field(name="view_count", dtype=Int32),
        Field(name="cart_count", dtype=Int32),
    ],
    source=_source("user_behavior"),
    description="Review, rating, purchase (RFM) and view/cart statistics, snapshotted at each activity",
)

# A new review reaches the online store through this push source (serving's /reviews).
user_text_push = PushSource(name="user_text_push", batch_source=_source("user_text_profile"))

user_text_profile = FeatureView(
    name="user_text_profile",
    entities=[user],
    ttl=TTL,
    schema=[
        Field(name="embedded_review_count", dtype=Int32),
        Field(name="user_embedding", dtype=Array(Float32)),
        Field(name="share_positive", dtype=Float32),
        Field(name="share_neutral", dtype=Float32),
        Field(name="share_negative", dtype=Float32),
        Field(name="sentiment_source", dtype=String),
        Field(name="interest_tags", dtype=String),
    ],
    source=user_text_push,
    description="Mean review embedding, sentiment tendency and interest tags, snapshotted at each review",
)

# --- the item's side ------------------------------------------------------------

item_stats = FeatureView(
    name="item_stats",
    entities=[item],
    ttl=TTL,
    schema=[
        Field(name="item_review_count", dtype=Int32),
        Field(name="item_rating_mean", dtype=Float32),
        Field(name="item_rating_trend", dtype=Float32),
        Field(name="item_popularity_rank", dtype=Int32),
    ],
    source=_source("item_stats"),
    description="Review count, mean rating, 90-day rating trend and popularity rank",
)

item_text_profile = FeatureView(
    name="item_text_profile",
    entities=[item],
    ttl=TTL,
    schema=[
        Field(name="item_embedded_review_count", dtype=Int32),
        Field(name="item_embedding", dtype=Array(Float32)),
    ],
    source=_source("item_text_profile"),
    description="Mean embedding of the item's reviews",
)

review_embedding = FeatureView(
    name="review_embedding",
    entities=[review],
    ttl=TTL,
    online=False,  # used for training and analysis, never read per request
    schema=[
        Field(name="embedding", dtype=Array(Float32)),
        Field(name="encoder", dtype=String),
        Field(name="encoder_revision", dtype=String),
    ],
    source=PostgreSQLSource(
        name="review_embeddings",
        table="review_embeddings",
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    ),
    description="L2-normalized encoder embedding of each review (summary + text)",
)

# --- user x item -------------------------------------------------------------------

request_context = RequestSource(name="request_context", schema=[Field(name="request_unix", dtype=Int64)])


@on_demand_feature_view(
    sources=[user_text_profile, item_text_profile, user_behavior, request_context],
    schema=[
        Field(name="affinity", dtype=Float64),
        Field(name="days_since_last_activity", dtype=Float64),
    ],
    mode="python",
    description="Cosine of the user's and the item's mean review embeddings; days since the "
    "user's last activity as of the request time",
)
def user_item_affinity(inputs: dict[str, Any]) -> dict[str, Any]:
    affinity: list[float | None] = []
    idle: list[float | None] = []
    for u, i, last, now in zip(
        inputs["user_embedding"], inputs["item_embedding"], inputs["last_activity_unix"], inputs["request_unix"]
    ):
        if u is None or i is None or len(u) == 0 or len(i) == 0:
            affinity.append(None)
        else:
            u, i = np.asarray(u, dtype=np.float64), np.asarray(i, dtype=np.float64)
            norm = np.linalg.norm(u) * np.linalg.norm(i)
            affinity.append(float(u @ i / norm) if norm > 0 else None)
        idle.append((now - last) / 86400.0 if last is not None and now is not None else None)
    return {"affinity": affinity, "days_since_last_activity": idle}


# --- feature services: one per consumer -------------------------------------------------

rating_v1 = FeatureService(
    name="rating_v1",
    features=[
        user_behavior,
        item_stats,
        user_text_profile[["share_positive", "share_neutral", "share_negative"]],
        user_item_affinity,
    ],
    description="Inputs of the rating model (rating-predictor)",
)

recommend_v1 = FeatureService(
    name="recommend_v1",
    features=[
        user_text_profile[["user_embedding", "embedded_review_count"]],
        item_text_profile[["item_embedding"]],
        item_stats,
        user_item_affinity,
    ],
    description="Candidate scoring for /recommend: 1 user + N items",
)

profile_v1 = FeatureService(
    name="profile_v1",
    features=[user_behavior, user_text_profile],
    description="The user's portrait for /profile",
)
