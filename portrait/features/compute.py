"""Pure feature compute: DataFrames in, snapshot DataFrames out (one row per entity and time its inputs changed), no I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd

from portrait.features.tags import running_tags
from portrait.text.labels import SENTIMENT_LABELS, is_low_rating


def _last_per_timestamp(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Several rows at one (entity, time) collapse into the last: the snapshot."""
    return df.groupby([key, "event_timestamp"], sort=False).tail(1).reset_index(drop=True)


# A review's length in the unit its language has: words where words are separated by
# spaces, characters in Chinese (language from ingest; NULL, e.g. no letters, counts as words).
REVIEW_LENGTHS_SQL = """
    CASE WHEN language IS DISTINCT FROM 'zh' THEN regexp_count(text, '\\S+') ELSE 0 END AS text_words,
    (language IS DISTINCT FROM 'zh')::int AS has_words,
    CASE WHEN language = 'zh' THEN char_length(text) ELSE 0 END AS text_chars_zh,
    (language = 'zh')::int AS is_zh"""


LENGTH_COLUMNS = ("text_words", "has_words", "text_chars_zh", "is_zh")


# what a user's acts add up to, summed per user over time
_SUMMED = [
    "is_review",
    "rating",
    "rating_sq",
    "is_low",
    "helpful_votes",
    "total_votes",
    *LENGTH_COLUMNS,
    "is_purchase",
    "is_view",
    "is_cart",
    "quantity",
    "amount",
]


def _user_acts(reviews: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Reviews and events as one table of acts, sorted by user and time."""
    r = reviews.assign(
        is_review=1.0,
        rating_sq=reviews["rating"] ** 2,
        is_low=is_low_rating(reviews["rating"]),
        is_purchase=0.0,
        is_view=0.0,
        is_cart=0.0,
        quantity=0.0,
        amount=0.0,
    )
    e = events.assign(
        is_review=0.0,
        rating=0.0,
        rating_sq=0.0,
        is_low=0.0,
        helpful_votes=0.0,
        total_votes=0.0,
        **dict.fromkeys(LENGTH_COLUMNS, 0.0),
        is_purchase=(events["event_type"] == "purchase").astype(float),
        is_view=(events["event_type"] == "view").astype(float),
        is_cart=(events["event_type"] == "cart").astype(float),
    )
    e["quantity"] = e["quantity"].fillna(0).astype(float) * e["is_purchase"]
    e["amount"] = e["amount"].fillna(0).astype(float) * e["is_purchase"]
    cols = ["user_id", "event_timestamp", *_SUMMED]
    acts = pd.concat([f[cols] for f in (r, e) if len(f)], ignore_index=True) if len(r) or len(e) else r[cols]
    acts["total_votes"] = acts["total_votes"].astype(float).fillna(0)  # NULL where an export has no votes
    return acts.sort_values(["user_id", "event_timestamp"], kind="stable").reset_index(drop=True)


def _purchase_features(out: pd.DataFrame, acts: pd.DataFrame, cum: pd.DataFrame, ts_unix: pd.Series) -> None:
    """Counts, monetary value, frequency and recency of purchases so far, into out."""
    purchases = cum["is_purchase"]
    out["purchase_count"] = purchases.astype(int)
    out["purchase_quantity_total"] = cum["quantity"].astype(int)
    out["purchase_monetary_total"] = cum["amount"]
    out["purchase_monetary_mean"] = (cum["amount"] / purchases).where(purchases > 0)
    # times are sorted per user: the last purchase so far is a forward fill, the first a cummin
    purchase_ts = ts_unix.where(acts["is_purchase"] > 0).astype(float)
    last_purchase = purchase_ts.groupby(acts["user_id"], sort=False).ffill()
    first_purchase = (
        purchase_ts.groupby(acts["user_id"], sort=False).cummin().groupby(acts["user_id"], sort=False).ffill()
    )
    span_days = (ts_unix - first_purchase) / 86400
    out["purchase_frequency_30d"] = (purchases / np.maximum(span_days, 30.0) * 30).where(purchases > 0)
    out["last_purchase_unix"] = last_purchase.round().astype("Int64")


def compute_user_behavior(reviews: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Snapshots of behaviour statistics at each time a user reviewed or acted.

    reviews: user_id, event_timestamp, rating, helpful_votes, total_votes, and the lengths of
             REVIEW_LENGTHS_SQL: text_words / has_words (reviews in space-separated languages),
             text_chars_zh / is_zh (Chinese reviews, which have no spaces to count words by)
    events:  user_id, event_timestamp, event_type (purchase/view/cart), quantity, amount
    """
    acts = _user_acts(reviews, events)
    if acts.empty:
        return pd.DataFrame()

    g = acts.groupby("user_id", sort=False)
    cum = g[_SUMMED].cumsum()
    out = pd.DataFrame({"user_id": acts["user_id"], "event_timestamp": acts["event_timestamp"]})
    windows = acts.set_index("event_timestamp").groupby("user_id", sort=False)["is_review"]
    for days in (30, 90, 365):
        # (t - days, t]: pandas time-based rolling windows, per user
        out[f"review_count_{days}d"] = windows.rolling(f"{days}D").sum().to_numpy().astype(int)
    n = cum["is_review"]
    out["review_count_total"] = n.astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = cum["rating"] / n
        out["rating_mean"] = mean
        var = (cum["rating_sq"] - n * mean**2) / (n - 1)
        out["rating_std"] = np.sqrt(var.clip(lower=0)).where(n >= 2)
        out["low_rating_share"] = cum["is_low"] / n
        out["helpful_ratio"] = (cum["helpful_votes"] / cum["total_votes"]).where(cum["total_votes"] > 0)
        # words for space-separated languages, characters for Chinese: two honest columns
        out["review_words_mean"] = (cum["text_words"] / cum["has_words"]).where(cum["has_words"] > 0)
        out["review_chars_mean_zh"] = (cum["text_chars_zh"] / cum["is_zh"]).where(cum["is_zh"] > 0)
    ts_unix = acts["event_timestamp"].astype("int64") // 10**9
    out["days_since_prev_activity"] = g["event_timestamp"].diff().dt.total_seconds() / 86400
    out["last_activity_unix"] = ts_unix.to_numpy()
    _purchase_features(out, acts, cum, ts_unix)
    out["view_count"] = cum["is_view"].astype(int)
    out["cart_count"] = cum["is_cart"].astype(int)
    return _last_per_timestamp(out, "user_id")


def popularity_ranks(items_in_time_order: np.ndarray) -> np.ndarray:
    """The popularity rank of each review's item just after it: 1 + the number of items
    with a strictly higher review count at that moment. A Fenwick tree over counts
    (how many items have each count) makes each step O(log n), so the walk stays linear
    in the reviews, however many distinct counts there are."""
    n = len(items_in_time_order)
    tree = np.zeros(n + 2, dtype=np.int64)  # tree over counts 1..n+1: items having each count

    def add(count: int, delta: int) -> None:
        while count <= n + 1:
            tree[count] += delta
            count += count & -count

    def at_most(count: int) -> int:
        total = 0
        while count > 0:
            total += tree[count]
            count -= count & -count
        return int(total)

    counts: dict[object, int] = {}
    ranks = np.empty(n, dtype=np.int64)
    for i, item in enumerate(items_in_time_order):
        old = counts.get(item, 0)
        if old:
            add(old, -1)
        counts[item] = old + 1
        add(old + 1, 1)
        ranks[i] = 1 + len(counts) - at_most(old + 1)
    return ranks


def compute_item_stats(reviews: pd.DataFrame, items: set[str] | None = None) -> pd.DataFrame:
    """Snapshots at each time an item was reviewed: review count, mean rating, its
    trend (mean of the last 90 days minus the mean before; null without both) and
    its popularity rank among all items by review count at that time.

    reviews: every review (item_id, event_timestamp, rating), so ranks see all items;
    items: the items whose snapshots to return (default all)."""
    r = reviews.sort_values(["event_timestamp", "item_id"], kind="stable").reset_index(drop=True)
    if r.empty:
        return pd.DataFrame()
    r["popularity_rank"] = popularity_ranks(r["item_id"].to_numpy())
    if items is not None:
        r = r[r["item_id"].isin(items)]
    r = r.sort_values(["item_id", "event_timestamp"], kind="stable").reset_index(drop=True)
    g = r.groupby("item_id", sort=False)
    out = pd.DataFrame({"item_id": r["item_id"], "event_timestamp": r["event_timestamp"]})
    n = g.cumcount() + 1
    total = g["rating"].cumsum()
    out["item_review_count"] = n
    out["item_rating_mean"] = total / n
    by_time = r.set_index("event_timestamp").groupby("item_id", sort=False)["rating"]
    recent_sum = by_time.rolling("90D").sum().to_numpy()
    recent_n = by_time.rolling("90D").count().to_numpy()
    before_n = n - recent_n
    with np.errstate(invalid="ignore", divide="ignore"):
        trend = recent_sum / recent_n - (total - recent_sum) / before_n
    out["item_rating_trend"] = np.where(before_n > 0, trend, np.nan)
    out["item_popularity_rank"] = r["popularity_rank"].to_numpy()
    return _last_per_timestamp(out, "item_id")


def _cumulative_mean_vectors(vectors: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per group (rows sorted by group), the running mean of the vectors."""
    out = np.empty_like(vectors)
    start = 0
    for end in np.flatnonzero(np.r_[groups[1:] != groups[:-1], True]) + 1:
        block = vectors[start:end]
        out[start:end] = np.cumsum(block, axis=0) / np.arange(1, len(block) + 1)[:, None]
        start = int(end)
    return out


def compute_item_text_profile(embedded: pd.DataFrame) -> pd.DataFrame:
    """Snapshots of each item's mean review embedding.
    embedded: item_id, event_timestamp, embedding (np arrays)."""
    e = embedded.sort_values(["item_id", "event_timestamp", "review_id"], kind="stable").reset_index(drop=True)
    if e.empty:
        return pd.DataFrame()
    vectors = np.stack(e["embedding"].to_numpy()).astype(np.float32)
    means = _cumulative_mean_vectors(vectors, e["item_id"].to_numpy())
    out = pd.DataFrame(
        {
            "item_id": e["item_id"],
            "event_timestamp": e["event_timestamp"],
            "item_embedded_review_count": e.groupby("item_id", sort=False).cumcount() + 1,
            "item_embedding": list(means),
        }
    )
    return _last_per_timestamp(out, "item_id")


def compute_user_text_profile(embedded: pd.DataFrame, sentiment_source: str) -> pd.DataFrame:
    """Snapshots of each user's mean review embedding, sentiment tendency (shares of
    positive / neutral / negative reviews so far) and interest tags (the aspects of
    the user's reviews so far, with their sentiment: portrait.features.tags).
    embedded: user_id, event_timestamp, review_id, embedding, sentiment, aspects."""
    e = embedded.sort_values(["user_id", "event_timestamp", "review_id"], kind="stable").reset_index(drop=True)
    if e.empty:
        return pd.DataFrame()
    users = e["user_id"].to_numpy()
    vectors = np.stack(e["embedding"].to_numpy()).astype(np.float32)
    g = e.groupby("user_id", sort=False)
    n = g.cumcount() + 1
    out = pd.DataFrame(
        {
            "user_id": e["user_id"],
            "event_timestamp": e["event_timestamp"],
            "embedded_review_count": n,
            "user_embedding": list(_cumulative_mean_vectors(vectors, users)),
        }
    )
    for label in SENTIMENT_LABELS:
        out[f"share_{label}"] = (e["sentiment"] == label).astype(float).groupby(e["user_id"], sort=False).cumsum() / n
    out["sentiment_source"] = sentiment_source
    out["interest_tags"] = running_tags(users, list(e["aspects"]))
    return _last_per_timestamp(out, "user_id")
