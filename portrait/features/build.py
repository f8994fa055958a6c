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

from portrait.features.executor import Compute
from portrait.store.database import REVIEW_ORDER
from portrait.text.labels import SENTIMENT_LABELS, is_low_rating, ratings_sentiment

log = logging.getLogger(__name__)

TAG_COUNT = 5


def _last_per_timestamp(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Several rows at one (entity, time) collapse into the last: the snapshot."""
    return df.groupby([key, "event_timestamp"], sort=False).tail(1).reset_index(drop=True)


# --- user_behavior ----------------------------------------------------------

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


# --- item_stats ---------------------------------------------------------------


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


# --- text profiles -------------------------------------------------------------


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


def fit_tag_vocabulary(texts: list[str]):
    """TF-IDF over the review corpus: what makes a user's words characteristic.
    None when the corpus has no usable terms (then users get no tags)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    # Terms in more than 2% of reviews are too common to characterize anyone; small
    # corpora (tests, a new shop) keep every term that is not in most documents.
    from portrait.text.language import tag_terms

    vectorizer = TfidfVectorizer(
        analyzer=tag_terms,  # words, not characters: jieba for Chinese, letter words for English
        min_df=3 if n >= 1000 else 1,
        max_df=max(0.02, min(1.0, 10 / max(n, 1))),
        max_features=20_000,
        sublinear_tf=True,
    )
    try:
        return vectorizer.fit(texts)
    except ValueError:  # empty vocabulary
        return None


TEXT_PROFILE_USERS_PER_SLICE = 20_000  # users whose reviews (and embeddings) are in memory at once
TEXT_PROFILE_ITEMS_PER_SLICE = 10_000  # the same for items (11 reviews an item where users have 7)
VOCABULARY_REFIT_GROWTH = 0.10  # refit the tag vocabulary once the corpus has grown by this much


def tag_vocabulary(conn, as_of: datetime):
    """The stored tag vocabulary while the corpus has grown by less than
    VOCABULARY_REFIT_GROWTH since it was fitted (IDF weights barely move: an incremental
    build then reads no other review's text); else fitted on every review and stored.
    `portrait forget` drops the stored one, so no erased review's terms outlive it."""
    from portrait.text.encoder import review_text

    reviews = conn.execute(sa.text("SELECT count(*) FROM reviews WHERE event_timestamp <= :a"), {"a": as_of}).scalar()
    stored = conn.execute(
        sa.text("SELECT reviews, terms, idf FROM tag_vocabulary ORDER BY vocabulary_id DESC LIMIT 1")
    ).first()
    if stored is not None and stored.reviews <= reviews <= stored.reviews * (1 + VOCABULARY_REFIT_GROWTH):
        return restore_tag_vocabulary(list(stored.terms), list(stored.idf))
    texts = _frame(conn, "SELECT summary, text FROM reviews WHERE event_timestamp <= :as_of", as_of=as_of)
    vectorizer = fit_tag_vocabulary([review_text(s, t) for s, t in zip(texts["summary"], texts["text"])])
    terms = vectorizer.get_feature_names_out().tolist() if vectorizer else []
    conn.execute(
        sa.text("INSERT INTO tag_vocabulary (reviews, terms, idf) VALUES (:n, :t, :i)"),
        {"n": reviews, "t": terms, "i": [float(v) for v in vectorizer.idf_] if vectorizer else []},
    )
    return vectorizer


def restore_tag_vocabulary(terms: list[str], idf: list[float]):
    """fit_tag_vocabulary's vectorizer from its terms and IDF weights (None without terms)."""
    if not terms:
        return None
    from sklearn.feature_extraction.text import TfidfVectorizer

    from portrait.text.language import tag_terms

    vectorizer = TfidfVectorizer(analyzer=tag_terms, vocabulary=terms, sublinear_tf=True)
    vectorizer.idf_ = np.asarray(idf, dtype=np.float64)
    return vectorizer


def compute_user_text_profile(embedded: pd.DataFrame, vectorizer, sentiment_source: str) -> pd.DataFrame:
    """Snapshots of each user's mean review embedding, sentiment tendency (shares of
    positive / neutral / negative reviews so far) and interest tags (top TF-IDF
    terms of the user's reviews so far).
    embedded: user_id, event_timestamp, review_id, embedding, sentiment, text."""
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
    out["interest_tags"] = (
        _running_tags(vectorizer.transform(e["text"].tolist()), users, vectorizer.get_feature_names_out())
        if vectorizer
        else ""
    )
    return _last_per_timestamp(out, "user_id")


def _running_tags(tfidf, groups: np.ndarray, terms: np.ndarray) -> list[str]:
    tags: list[str] = []
    acc = None
    for i in range(tfidf.shape[0]):
        row = tfidf.getrow(i)
        acc = row if i == 0 or groups[i] != groups[i - 1] else acc + row
        top = acc.indices[np.argsort(-acc.data, kind="stable")[:TAG_COUNT]]
        tags.append(", ".join(terms[top]))
    return tags


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


def _frame(conn, sql: str, **params) -> pd.DataFrame:
    result = conn.execute(sa.text(sql), params)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _utc(df: pd.DataFrame) -> pd.DataFrame:
    if "event_timestamp" in df:
        df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    return df


def _replace_snapshots(
    conn, table: str, key: str, entities: Sequence[str], frame: pd.DataFrame, as_of: datetime
) -> int:
    """Delete the entities' snapshots up to as_of and COPY the recomputed ones in."""
    conn.execute(
        sa.text(f"DELETE FROM {table} WHERE {key} = ANY(:ids) AND event_timestamp <= :as_of"),
        {"ids": entities, "as_of": as_of},
    )
    if frame.empty:
        return 0
    columns = list(frame.columns)
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in frame.itertuples(index=False, name=None):
            copy.write_row([_sql_value(v) for v in row])
    return len(frame)


def pg_array(vector: np.ndarray) -> str:
    """A real[] literal for text COPY: several times faster than letting psycopg
    adapt a list of floats element by element."""
    return "{" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).tolist())) + "}"


def _sql_value(value):
    if value is pd.NA:
        return None
    if isinstance(value, np.ndarray):
        return pg_array(value)
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


EMBEDDED_SQL = """
    SELECT r.review_id, r.user_id, r.item_id, r.event_timestamp, r.rating, r.summary, r.text, e.embedding
    FROM reviews r JOIN review_embeddings e USING (review_id)
    WHERE r.event_timestamp <= :as_of AND {cond}"""


def rebuild_items(conn, items: Sequence[str], as_of: datetime, compute: Compute | None = None) -> dict[str, int]:
    """Recompute the items' snapshots (item_stats, item_text_profile) up to as_of
    from the reviews there are now: after new reviews, and after `portrait forget`
    took a user's reviews out. Returns rows written per table."""
    compute = compute or Compute()
    all_reviews = _utc(
        _frame(
            conn, "SELECT item_id, event_timestamp, rating FROM reviews WHERE event_timestamp <= :as_of", as_of=as_of
        )
    )
    rows = {
        "item_stats": _replace_snapshots(
            conn, "item_stats", "item_id", items, compute_item_stats(all_reviews, set(items)), as_of
        )
    }
    rows["item_text_profile"] = 0
    # in slices of items: a full build must not hold every review's embedding at once
    items = list(items)
    for start in range(0, len(items), TEXT_PROFILE_ITEMS_PER_SLICE):
        part = items[start : start + TEXT_PROFILE_ITEMS_PER_SLICE]
        by_item = _utc(_frame(conn, EMBEDDED_SQL.format(cond="r.item_id = ANY(:i)"), as_of=as_of, i=part))
        by_item["embedding"] = by_item["embedding"].map(np.asarray)
        rows["item_text_profile"] += _replace_snapshots(
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
    re-embedded reviews, and users whose profile has another sentiment source."""
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
        UNION SELECT user_id FROM review_embeddings WHERE created_timestamp > :last_finished"""),
            params,
        )
        .scalars()
        .all()
    )
    items = (
        conn.execute(
            sa.text(f"""
        SELECT item_id FROM reviews WHERE {new_rows.format(id="review_id", p="rid")}
        UNION SELECT item_id FROM review_embeddings WHERE created_timestamp > :last_finished"""),
            params,
        )
        .scalars()
        .all()
    )
    return Changes(list(users), list(items), max_review_id, max_event_id)


def rebuild_user_behavior(conn, users: list[str], as_of: datetime, compute: Compute) -> int:
    """New user_behavior snapshots of these users as of as_of; returns the rows written."""
    reviews = _utc(
        _frame(
            conn,
            f"""
        SELECT user_id, event_timestamp, rating, helpful_votes, total_votes, {REVIEW_LENGTHS_SQL}
        FROM reviews WHERE user_id = ANY(:u) AND event_timestamp <= :as_of""",
            u=users,
            as_of=as_of,
        )
    )
    events = _utc(
        _frame(
            conn,
            """
        SELECT user_id, event_timestamp, event_type, quantity, amount FROM events
        WHERE event_type <> 'review' AND user_id = ANY(:u) AND event_timestamp <= :as_of""",
            u=users,
            as_of=as_of,
        )
    )
    events["amount"] = events["amount"].astype(float)
    return _replace_snapshots(
        conn,
        "user_behavior",
        "user_id",
        users,
        compute.by_entity(compute_user_behavior, "user_id", reviews, events),
        as_of,
    )


def rebuild_user_text_profiles(
    conn, users: list[str], as_of: datetime, compute: Compute, sentiment: SentimentLabeler
) -> int:
    """New user_text_profile snapshots (embedding mean, sentiment shares, tags), in
    slices of users: a full build must not hold every review's embedding at once."""
    from portrait.text.encoder import review_text

    vectorizer = tag_vocabulary(conn, as_of)
    written = 0
    for start in range(0, len(users), TEXT_PROFILE_USERS_PER_SLICE):
        part = users[start : start + TEXT_PROFILE_USERS_PER_SLICE]
        by_user = _utc(_frame(conn, EMBEDDED_SQL.format(cond="r.user_id = ANY(:u)"), as_of=as_of, u=part))
        by_user["embedding"] = by_user["embedding"].map(np.asarray)
        by_user["text"] = [review_text(s, t) for s, t in zip(by_user["summary"], by_user["text"])]
        by_user["sentiment"] = np.asarray(sentiment(by_user)) if len(by_user) else []
        written += _replace_snapshots(
            conn,
            "user_text_profile",
            "user_id",
            part,
            compute.by_entity(
                compute_user_text_profile, "user_id", by_user, vectorizer=vectorizer, sentiment_source=sentiment.source
            ),
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

    from portrait.text.encoder import default_model_path, model_revision

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
        rows_embedded = _embed_new_reviews(conn, model_path, revision, as_of, progress)
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
            rows["user_text_profile"] = rebuild_user_text_profiles(conn, changes.users, as_of, compute, sentiment)
        _record_watermark(conn, as_of, changes, rows_embedded)
    return BuildResult(as_of, rows_embedded, len(changes.users), len(changes.items), rows)


def _store_embeddings(
    conn, todo: pd.DataFrame, hashes: list[bytes], vectors_by_hash: dict, name: str, rev: str
) -> None:
    """The reviews' embeddings COPYed into a staging table and upserted in one statement."""
    cursor = conn.connection.driver_connection.cursor()
    cursor.execute("CREATE TEMP TABLE stage_embeddings (LIKE review_embeddings INCLUDING DEFAULTS) ON COMMIT DROP")
    with cursor.copy(
        "COPY stage_embeddings (review_id, user_id, item_id, event_timestamp, embedding, "
        "encoder, encoder_revision, text_hash) FROM STDIN"
    ) as copy:
        for row, h in zip(todo.itertuples(index=False), hashes):
            copy.write_row(
                (
                    row.review_id,
                    row.user_id,
                    row.item_id,
                    row.event_timestamp.to_pydatetime(),
                    pg_array(vectors_by_hash[h]),
                    name,
                    rev,
                    h,
                )
            )
    cursor.execute("""
        INSERT INTO review_embeddings (review_id, user_id, item_id, event_timestamp, embedding, encoder,
                                       encoder_revision, text_hash)
        SELECT review_id, user_id, item_id, event_timestamp, embedding, encoder, encoder_revision, text_hash
        FROM stage_embeddings
        ON CONFLICT (review_id) DO UPDATE SET embedding = EXCLUDED.embedding, encoder = EXCLUDED.encoder,
            encoder_revision = EXCLUDED.encoder_revision, text_hash = EXCLUDED.text_hash, created_timestamp = now()""")


def _embed_new_reviews(conn, model_path: str, revision: str, as_of: datetime, progress: bool) -> int:
    """Embed the reviews up to as_of that have no embedding by this encoder revision."""
    from portrait.text.encoder import Encoder, encoder_name, review_text

    todo = _utc(
        _frame(
            conn,
            """
        SELECT r.review_id, r.user_id, r.item_id, r.event_timestamp, r.summary, r.text
        FROM reviews r LEFT JOIN review_embeddings e ON e.review_id = r.review_id AND e.encoder_revision = :rev
        WHERE e.review_id IS NULL AND r.event_timestamp <= :as_of ORDER BY """
            + REVIEW_ORDER,
            rev=revision,
            as_of=as_of,
        )
    )
    if todo.empty:
        return 0  # the encoder is not even loaded
    texts = [review_text(s, t) for s, t in zip(todo["summary"], todo["text"])]
    hashes = [text_hash(t) for t in texts]
    # identical texts embed once per encoder revision: reuse what is stored, embed each new text once
    vectors_by_hash: dict[bytes, np.ndarray] = {}
    unique = list(dict.fromkeys(hashes))
    for start in range(0, len(unique), 50_000):
        rows = conn.execute(
            sa.text(
                "SELECT DISTINCT ON (text_hash) text_hash, embedding FROM review_embeddings "
                "WHERE encoder_revision = :rev AND text_hash = ANY(:h)"
            ),
            {"rev": revision, "h": unique[start : start + 50_000]},
        )
        vectors_by_hash.update((bytes(h), np.asarray(v, dtype=np.float32)) for h, v in rows)
    reused = len(vectors_by_hash)
    new = {h: t for h, t in zip(hashes, texts) if h not in vectors_by_hash}
    encoder = Encoder.load(model_path) if new else None
    if encoder is not None:
        vectors_by_hash.update(zip(new, encoder.embed(list(new.values()), progress=progress)))
    name, rev = (encoder.name, encoder.revision) if encoder else (encoder_name(model_path), revision)
    log.info("embedded %d texts for %d reviews (%d known texts reused)", len(new), len(todo), reused)
    _store_embeddings(conn, todo, hashes, vectors_by_hash, name, rev)
    return len(todo)


def text_hash(text: str) -> bytes:
    """The content hash of an embedded text (sha256, first 16 bytes)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).digest()[:16]
