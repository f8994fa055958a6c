"""Pure parts of the online path: the item snapshot's affinity, the rating
inputs built from it, segments, and the text-profile update a new review pushes."""

from datetime import datetime, timezone

import numpy as np
import pytest

from portrait.features.rating_inputs import normalize
from serving.online import ItemSnapshot, OnlineReader, ServingContract, pushed_text_profile, segment

CONTRACT = ServingContract(
    user_refs=[
        "user_behavior:rating_mean",
        "user_behavior:last_activity_unix",
        "user_text_profile:user_embedding",
        "user_text_profile:share_positive",
    ],
    item_refs=["item_text_profile:item_embedding", "item_stats:item_review_count", "item_stats:item_rating_trend"],
    rating_features=[
        "rating_mean",
        "last_activity_unix",
        "item_review_count",
        "item_rating_trend",
        "share_positive",
        "affinity",
        "days_since_last_activity",
    ],
)


def reader_with(items: ItemSnapshot) -> OnlineReader:
    return OnlineReader(store=None, contract=CONTRACT, items=items)


def test_affinity_is_the_cosine_and_nan_where_unknown():
    emb = np.array([[1, 0], [0, 2], [0, 0]], dtype=np.float32)
    reader = reader_with(ItemSnapshot(["a", "b", "c"], normalize(emb), stats={}))
    got = reader.affinity({"user_embedding": [3.0, 4.0]}, ["a", "b", "c", "zz"])
    np.testing.assert_allclose(got[:2], [0.6, 0.8], rtol=1e-6)
    assert np.isnan(got[2]) and np.isnan(got[3])
    assert np.isnan(reader.affinity({}, ["a"])).all()


def test_rating_inputs_carry_user_item_and_on_demand_features_in_the_service_order():
    snap = ItemSnapshot(
        ["a"],
        normalize(np.array([[1.0, 0.0]], dtype=np.float32)),
        stats={"item_review_count": np.array([7.0]), "item_rating_trend": np.array([np.nan])},
    )
    user = {"user_embedding": [1.0, 0.0], "rating_mean": 4.0, "last_activity_unix": 0, "share_positive": 1.0}
    frame = reader_with(snap).rating_inputs(user, ["a", "unknown"], now_unix=86400 * 2)
    assert list(frame.columns) == CONTRACT.rating_features
    row = frame.iloc[0]
    assert (row.item_review_count, row.rating_mean, row.affinity, row.days_since_last_activity) == (7, 4, 1, 2)
    assert np.isnan(row.item_rating_trend) and row.share_positive == 1.0
    assert np.isnan(frame.iloc[1].item_review_count) and np.isnan(frame.iloc[1].affinity)
    cold = reader_with(snap).rating_inputs({}, ["a"], now_unix=0)  # an unknown user: every user input missing
    assert cold[["rating_mean", "share_positive", "affinity", "days_since_last_activity"]].isna().all(axis=None)


@pytest.mark.parametrize(
    "user, expected",
    [
        ({}, "newcomer"),
        ({"purchase_count": 3}, "buyer (purchases, no reviews)"),
        ({"review_count_total": 4, "low_rating_share": 0.5}, "critical reviewer"),
        ({"review_count_total": 12, "rating_mean": 4.6}, "enthusiast"),
        ({"review_count_total": 12, "rating_mean": 3.1}, "frequent reviewer"),
        ({"review_count_total": 2, "rating_mean": 4.0}, "occasional reviewer"),
    ],
)
def test_segments(user, expected):
    assert segment(user) == expected


def test_a_pushed_review_moves_the_running_mean_and_shares_by_one():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    user = {
        "embedded_review_count": 3,
        "user_embedding": [1.0, 1.0],
        "share_positive": 1.0,
        "share_neutral": 0.0,
        "share_negative": 0.0,
        "interest_tags": "tone",
        "sentiment_source": "ratings",
    }
    row = pushed_text_profile(user, np.array([5.0, -3.0]), "negative", now)
    np.testing.assert_allclose(row["user_embedding"][0], [2.0, 0.0])
    assert row["embedded_review_count"] == [4] and row["share_negative"] == [0.25] and row["share_positive"] == [0.75]
    assert row["interest_tags"] == ["tone"] and row["event_timestamp"] == [now]
    first = pushed_text_profile({}, np.array([1.0, 0.0]), "positive", now)
    assert first["embedded_review_count"] == [1] and first["share_positive"] == [1.0]


class StoreWithTimes:
    """get_online_features as Feast answers it with include_event_timestamps, and TTLs per view."""

    def __init__(self, values: dict, seconds: dict, ttls: dict) -> None:
        self.values, self.seconds, self.ttls = values, seconds, ttls

    def get_online_features(self, features, entity_rows):
        store = self

        class Response:
            def to_dict(self, include_event_timestamps=False):
                out = {"user_id": [entity_rows[0]["user_id"]], **{k: [v] for k, v in store.values.items()}}
                if include_event_timestamps:
                    out.update({f"{k}__ts": [store.seconds.get(k, 0)] for k in store.values})
                return out

        return Response()

    def get_feature_view(self, name):
        from datetime import timedelta

        class View:
            ttl = timedelta(seconds=self.ttls[name]) if self.ttls.get(name) else None

        return View()


def test_values_older_than_their_views_ttl_are_stale_and_missing_ones_are_not():
    now = 1_000_000.0
    store = StoreWithTimes(
        values={"rating_mean": 4.0, "last_activity_unix": 5, "user_embedding": None, "share_positive": 0.5},
        seconds={"rating_mean": now - 50, "last_activity_unix": now - 50, "share_positive": now - 500},
        ttls={"user_behavior": 100, "user_text_profile": 100},
    )
    reader = OnlineReader(store=store, contract=CONTRACT, items=None)
    user, times = reader.user_read("u1")
    assert user["rating_mean"] == 4.0 and "rating_mean__ts" not in user
    assert times == {"user_behavior": now - 50, "user_text_profile": now - 500}
    assert reader.stale(times, now) == ["user_text_profile"]
    no_ttl = OnlineReader(store=StoreWithTimes(store.values, store.seconds, {}), contract=CONTRACT, items=None)
    assert no_ttl.stale(times, now) == []  # a view without a TTL never expires
