"""Pure parts of the online path: the item snapshot's affinity, segments, and
the text-profile update a new review pushes."""
from datetime import datetime, timezone

import numpy as np
import pytest

from portrait.online import ItemSnapshot, OnlineReader, normalize, pushed_text_profile, segment


def reader_with(items: ItemSnapshot) -> OnlineReader:
    reader = OnlineReader(store=None, refresh_seconds=1e9)
    reader._items, reader._checked = items, float("inf")
    return reader


def test_affinity_is_the_cosine_and_nan_where_unknown():
    emb = np.array([[1, 0], [0, 2], [0, 0]], dtype=np.float32)
    snap = ItemSnapshot(["a", "b", "c"], normalize(emb), stats={})
    reader = reader_with(snap)
    got = reader.affinity({"user_embedding": [3.0, 4.0]}, ["a", "b", "c", "zz"])
    np.testing.assert_allclose(got[:2], [0.6, 0.8], rtol=1e-6)
    assert np.isnan(got[2]) and np.isnan(got[3])
    assert np.isnan(reader.affinity({}, ["a"])).all()


def test_rating_inputs_carry_user_item_and_on_demand_features():
    snap = ItemSnapshot(["a"], normalize(np.array([[1.0, 0.0]], dtype=np.float32)),
                        stats={"item_review_count": np.array([7.0]), "item_rating_mean": np.array([4.5]),
                               "item_rating_trend": np.array([np.nan]), "item_popularity_rank": np.array([3.0])})
    user = {"user_embedding": [1.0, 0.0], "rating_mean": 4.0, "last_activity_unix": 0, "share_positive": 1.0}
    frame = reader_with(snap).rating_inputs(user, ["a"], now_unix=86400 * 2)
    row = frame.iloc[0]
    assert (row.item_review_count, row.rating_mean, row.affinity, row.days_since_last_activity) == (7, 4, 1, 2)
    assert np.isnan(row.item_rating_trend) and row.share_positive == 1.0


@pytest.mark.parametrize("user, expected", [
    ({}, "newcomer"),
    ({"purchase_count": 3}, "buyer (purchases, no reviews)"),
    ({"review_count_total": 4, "low_rating_share": 0.5}, "critical reviewer"),
    ({"review_count_total": 12, "rating_mean": 4.6}, "enthusiast"),
    ({"review_count_total": 12, "rating_mean": 3.1}, "frequent reviewer"),
    ({"review_count_total": 2, "rating_mean": 4.0}, "occasional reviewer"),
])
def test_segments(user, expected):
    assert segment(user) == expected


def test_a_pushed_review_moves_the_running_mean_and_shares_by_one():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    user = {"embedded_review_count": 3, "user_embedding": [1.0, 1.0], "share_positive": 1.0, "share_neutral": 0.0,
            "share_negative": 0.0, "interest_tags": "tone", "sentiment_source": "ratings"}
    row = pushed_text_profile(user, np.array([5.0, -3.0]), "negative", now)
    np.testing.assert_allclose(row["user_embedding"][0], [2.0, 0.0])
    assert row["embedded_review_count"] == [4] and row["share_negative"] == [0.25] and row["share_positive"] == [0.75]
    assert row["interest_tags"] == ["tone"] and row["event_timestamp"] == [now]
    first = pushed_text_profile({}, np.array([1.0, 0.0]), "positive", now)
    assert first["embedded_review_count"] == [1] and first["share_positive"] == [1.0]
