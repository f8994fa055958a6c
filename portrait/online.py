"""Online reads for serving: the user's features from Feast per request, the
items' features from an in-process snapshot.

Item features change only when features are materialized, and a request for 1
user + 100 items spends ~90% of Feast's time converting the 100 item rows in
Python. So the snapshot holds every item's embedding and stats as numpy arrays,
refreshed when the item views' materialization moves on; affinity (the cosine
of user and item embeddings, as the on-demand view user_item_affinity computes
it) is one matrix-vector product."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

USER_BEHAVIOR = [
    "review_count_30d", "review_count_90d", "review_count_365d", "review_count_total", "rating_mean", "rating_std",
    "low_rating_share", "helpful_ratio", "review_length_mean", "days_since_prev_activity", "last_activity_unix",
    "purchase_count", "purchase_quantity_total", "purchase_monetary_total", "purchase_monetary_mean",
    "purchase_frequency_30d", "last_purchase_unix", "view_count", "cart_count",
]
USER_TEXT = ["embedded_review_count", "user_embedding", "share_positive", "share_neutral", "share_negative",
             "sentiment_source", "interest_tags"]
USER_FEATURES = [f"user_behavior:{f}" for f in USER_BEHAVIOR] + [f"user_text_profile:{f}" for f in USER_TEXT]
ITEM_VIEWS = ("item_text_profile", "item_stats")
ITEM_STATS = ("item_review_count", "item_rating_mean", "item_rating_trend", "item_popularity_rank")


@dataclass
class ItemSnapshot:
    """Every item's online features as arrays; row i is item_ids[i]."""
    item_ids: list[str]
    embeddings: np.ndarray            # (n, d), L2-normalized; zero rows for items without one
    stats: dict[str, np.ndarray]      # feature -> (n,) float, NaN where missing
    version: object = None
    loaded_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.item_ids)}

    def rows(self, item_ids: list[str]) -> np.ndarray:
        """Row numbers of the given items; -1 for unknown items."""
        return np.array([self.index.get(i, -1) for i in item_ids], dtype=np.int64)


def normalize(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v, dtype=np.float32), where=norm > 0)


def materialization_version(store) -> object:
    """What changes when the item views are materialized again."""
    views = [store.registry.get_feature_view(name, store.project, allow_cache=False) for name in ITEM_VIEWS]
    return tuple(v.most_recent_end_time for v in views)


def load_item_snapshot(store, version: object = None, batch: int = 1000) -> ItemSnapshot:
    """All items known to the offline item_stats table, read from the online store."""
    item_ids = _all_item_ids(store)
    embeddings, stats = [], {name: [] for name in ITEM_STATS}
    for start in range(0, len(item_ids), batch):
        chunk = item_ids[start:start + batch]
        got = store.get_online_features(
            features=["item_text_profile:item_embedding", *(f"item_stats:{s}" for s in ITEM_STATS)],
            entity_rows=[{"item_id": i} for i in chunk]).to_dict()
        embeddings.extend(got["item_embedding"])
        for name in ITEM_STATS:
            stats[name].extend(got[name])
    dim = next((len(e) for e in embeddings if e), 0)
    matrix = np.zeros((len(item_ids), dim), dtype=np.float32)
    for i, e in enumerate(embeddings):
        if e:
            matrix[i] = e
    return ItemSnapshot(item_ids=item_ids, embeddings=normalize(matrix),
                        stats={k: np.array([np.nan if x is None else x for x in v], dtype=np.float64)
                               for k, v in stats.items()},
                        version=version)


def _all_item_ids(store) -> list[str]:
    """The item ids, from the offline store's item table (the online store cannot list keys)."""
    import psycopg

    cfg = store.config.offline_store
    with psycopg.connect(host=cfg.host, port=cfg.port, dbname=cfg.database, user=cfg.user,
                         password=cfg.password or None, sslmode=cfg.sslmode or "prefer") as conn:
        return [r[0] for r in conn.execute("SELECT DISTINCT item_id FROM item_stats ORDER BY item_id")]


class OnlineReader:
    """Per-request reads for serving, thread-safe."""

    def __init__(self, store, refresh_seconds: float = 30.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._items: ItemSnapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def items(self) -> ItemSnapshot:
        """The item snapshot, reloaded when the item views were materialized again
        (checked at most every refresh_seconds)."""
        if self._items is not None and time.monotonic() - self._checked < self.refresh_seconds:
            return self._items
        return self.refresh_items()

    def refresh_items(self) -> ItemSnapshot:
        """Check now whether the item views were materialized again; reload them if so.
        (Serving calls this from its poller, so that no request waits for it.)"""
        with self._lock:
            version = materialization_version(self.store)
            if self._items is None or version != self._items.version:
                self._items = load_item_snapshot(self.store, version)
            self._checked = time.monotonic()
        return self._items

    def user(self, user_id: str) -> dict[str, object]:
        """The user's online features ({} when the store knows nothing of the user)."""
        got = self.store.get_online_features(features=USER_FEATURES, entity_rows=[{"user_id": user_id}]).to_dict()
        values = {k: v[0] for k, v in got.items() if k != "user_id"}
        return values if any(v is not None for v in values.values()) else {}

    def affinity(self, user: dict[str, object], item_ids: list[str]) -> np.ndarray:
        """Cosine of the user's and each item's embedding; NaN where either is missing."""
        items = self.items()
        rows = items.rows(item_ids)
        out = np.full(len(item_ids), np.nan)
        vector = user.get("user_embedding")
        if not vector:
            return out
        u = normalize(np.asarray(vector, dtype=np.float32))
        known = rows >= 0
        scores = items.embeddings[rows[known]] @ u
        has_embedding = np.linalg.norm(items.embeddings[rows[known]], axis=1) > 0
        out[np.flatnonzero(known)] = np.where(has_embedding, scores, np.nan)
        return out

    def rating_inputs(self, user: dict[str, object], item_ids: list[str], now_unix: float) -> "pd.DataFrame":
        """The rating model's inputs for one user and many items, as feature service
        rating_v1 defines them, assembled in process (user from Feast, items from
        the snapshot, the on-demand features computed as user_item_affinity does)."""
        import pandas as pd

        items = self.items()
        rows = items.rows(item_ids)
        n = len(item_ids)
        frame = pd.DataFrame({name: [user.get(name)] * n for name in USER_BEHAVIOR})
        for name in ("share_positive", "share_neutral", "share_negative"):
            frame[name] = [user.get(name)] * n
        for name in ITEM_STATS:
            values = np.full(n, np.nan)
            values[rows >= 0] = items.stats[name][rows[rows >= 0]]
            frame[name] = values
        frame["affinity"] = self.affinity(user, item_ids)
        last = user.get("last_activity_unix")
        frame["days_since_last_activity"] = (now_unix - last) / 86400.0 if last is not None else np.nan
        return frame.astype(float)


def segment(user: dict[str, object]) -> str:
    """A readable segment from behaviour: who this user is, in one phrase."""
    reviews = user.get("review_count_total") or 0
    purchases = user.get("purchase_count") or 0
    low = user.get("low_rating_share") or 0.0
    mean = user.get("rating_mean")
    if not reviews and purchases:
        return "buyer (purchases, no reviews)"
    if not reviews:
        return "newcomer"
    if low >= 0.3:
        return "critical reviewer"
    if reviews >= 10 and mean is not None and mean >= 4.0:
        return "enthusiast"
    if reviews >= 10:
        return "frequent reviewer"
    return "occasional reviewer"


def pushed_text_profile(user: dict[str, object], embedding: np.ndarray, label: str, now) -> dict[str, list]:
    """The user's text profile after one more review: the running mean embedding
    and sentiment shares move by one review; interest tags stay until the next build."""
    n = int(user.get("embedded_review_count") or 0)
    old = np.asarray(user.get("user_embedding") or np.zeros_like(embedding), dtype=np.float64)
    mean = (old * n + embedding) / (n + 1)
    shares = {f"share_{k}": (float(user.get(f"share_{k}") or 0.0) * n + (k == label)) / (n + 1)
              for k in ("negative", "neutral", "positive")}
    return {"embedded_review_count": [n + 1], "user_embedding": [mean.astype(np.float32).tolist()],
            **{k: [v] for k, v in shares.items()},
            "sentiment_source": [user.get("sentiment_source") or "ratings"],
            "interest_tags": [user.get("interest_tags") or ""],
            "event_timestamp": [now], "created_timestamp": [now]}
