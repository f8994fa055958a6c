"""The feature computations (pure functions): values, snapshots, and that a
snapshot never depends on anything after its own time."""

import numpy as np
import pandas as pd
import pytest

from portrait.features.compute import (
    compute_item_stats,
    compute_item_text_profile,
    compute_user_behavior,
    compute_user_text_profile,
    popularity_ranks,
)
from portrait.features.tags import aspect_mentions
from portrait.text.labels import ratings_sentiment


def ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def reviews_frame(rows, language: str = "en"):
    """Rows of (user, time, rating, helpful, total, length): words in English, characters in Chinese."""
    df = pd.DataFrame(rows, columns=["user_id", "event_timestamp", "rating", "helpful_votes", "total_votes", "length"])
    zh = language == "zh"
    return df.assign(
        text_words=0 if zh else df["length"],
        has_words=int(not zh),
        text_chars_zh=df["length"] if zh else 0,
        is_zh=int(zh),
    ).drop(columns="length")


def test_review_length_is_words_in_english_and_characters_in_chinese():
    en = reviews_frame([("u1", ts("2014-01-01"), 5, 0, 0, 10), ("u1", ts("2014-01-02"), 4, 0, 0, 20)])
    zh = reviews_frame([("u1", ts("2014-01-03"), 5, 0, 0, 40)], language="zh")
    out = compute_user_behavior(pd.concat([en, zh], ignore_index=True), EMPTY_EVENTS).set_index("event_timestamp")
    first, last = out.loc[ts("2014-01-01")], out.loc[ts("2014-01-03")]
    assert first.review_words_mean == 10 and np.isnan(first.review_chars_mean_zh)
    assert (last.review_words_mean, last.review_chars_mean_zh) == (15, 40)  # Chinese does not dilute words


EMPTY_EVENTS = pd.DataFrame(columns=["user_id", "event_timestamp", "event_type", "quantity", "amount"])


def test_user_behavior_windows_ratings_and_snapshots():
    r = reviews_frame(
        [
            ("u1", ts("2014-01-01"), 5, 1, 2, 100),
            ("u1", ts("2014-01-20"), 1, 0, 0, 50),
            ("u1", ts("2014-01-20"), 3, 3, 4, 30),  # same day: one snapshot
            ("u1", ts("2014-06-01"), 4, 0, 0, 20),
        ]
    )
    out = compute_user_behavior(r, EMPTY_EVENTS).set_index("event_timestamp")
    assert list(out.index) == [ts("2014-01-01"), ts("2014-01-20"), ts("2014-06-01")]
    jan20 = out.loc[ts("2014-01-20")]
    assert (jan20.review_count_30d, jan20.review_count_total) == (3, 3)
    assert jan20.rating_mean == pytest.approx(3.0)
    assert jan20.rating_std == pytest.approx(np.std([5, 1, 3], ddof=1))
    assert jan20.low_rating_share == pytest.approx(1 / 3)
    assert jan20.helpful_ratio == pytest.approx(4 / 6)
    assert jan20.days_since_prev_activity == pytest.approx(0.0)  # the second review that day
    jun = out.loc[ts("2014-06-01")]
    assert (jun.review_count_30d, jun.review_count_90d, jun.review_count_365d) == (1, 1, 4)
    assert np.isnan(out.loc[ts("2014-01-01")].rating_std)
    assert jun.last_activity_unix == ts("2014-06-01").timestamp()


def test_user_behavior_purchases_views_and_carts():
    e = pd.DataFrame(
        [
            ("c1", ts("1997-01-01"), "purchase", 2, 20.0),
            ("c1", ts("1997-03-02"), "purchase", 1, 10.0),
            ("c1", ts("1997-03-05"), "view", None, None),
            ("c1", ts("1997-03-06"), "cart", 1, None),
        ],
        columns=EMPTY_EVENTS.columns,
    )
    out = compute_user_behavior(reviews_frame([]), e).set_index("event_timestamp")
    last = out.iloc[-1]
    assert (last.purchase_count, last.purchase_quantity_total, last.view_count, last.cart_count) == (2, 3, 1, 1)
    assert last.purchase_monetary_total == pytest.approx(30.0)
    assert last.purchase_monetary_mean == pytest.approx(15.0)
    assert last.last_purchase_unix == ts("1997-03-02").timestamp()
    # two purchases over 64 days since the first: 2 / 64 * 30
    assert last.purchase_frequency_30d == pytest.approx(2 / 64 * 30)
    assert last.review_count_total == 0 and np.isnan(last.rating_mean)


def test_item_stats_rank_and_trend():
    r = pd.DataFrame(
        [
            ("a", ts("2014-01-01"), 5),
            ("a", ts("2014-01-02"), 5),
            ("b", ts("2014-01-03"), 2),
            ("b", ts("2014-01-04"), 2),
            ("b", ts("2014-01-05"), 2),
            ("a", ts("2014-06-01"), 1),
        ],
        columns=["item_id", "event_timestamp", "rating"],
    )
    out = compute_item_stats(r)
    a = out[out.item_id == "a"].set_index("event_timestamp")
    b = out[out.item_id == "b"].set_index("event_timestamp")
    assert b.loc[ts("2014-01-05")].item_popularity_rank == 1  # b has 3, a has 2
    assert a.loc[ts("2014-01-02")].item_popularity_rank == 1
    assert a.loc[ts("2014-06-01")].item_popularity_rank == 1  # 3 vs 3: ties share the rank
    assert b.loc[ts("2014-01-04")].item_popularity_rank == 1  # 2 vs 2
    assert a.loc[ts("2014-06-01")].item_rating_trend == pytest.approx(1 - 5)
    assert np.isnan(a.loc[ts("2014-01-02")].item_rating_trend)  # nothing before the last 90 days
    assert a.loc[ts("2014-06-01")].item_rating_mean == pytest.approx(11 / 3)


def embedded_frame():
    rng = np.random.default_rng(0)
    rows = []
    for i, (u, it, day, rating, text) in enumerate(
        [
            ("u1", "a", "2014-01-01", 5, "I love the warm tone of this amp"),
            ("u1", "b", "2014-02-01", 1, "The string broke, the tuning pegs slipped"),
            ("u2", "a", "2014-02-03", 4, "The tubes glow, a warm amp"),
            ("u1", "c", "2014-03-01", 3, "The pedal hums but the amp is great"),
        ]
    ):
        v = rng.normal(size=8).astype(np.float32)
        rows.append((i + 1, u, it, ts(day), rating, text, v / np.linalg.norm(v)))
    e = pd.DataFrame(
        rows, columns=["review_id", "user_id", "item_id", "event_timestamp", "rating", "text", "embedding"]
    )
    e["sentiment"] = ratings_sentiment(e["rating"])
    return e


def test_user_text_profile_running_means_shares_and_tags():
    e = embedded_frame()
    e["aspects"] = aspect_mentions(e, lambda clauses: ratings_sentiment(clauses["rating"]))
    out = compute_user_text_profile(e, "ratings")
    u1 = out[out.user_id == "u1"].reset_index(drop=True)
    assert list(u1.embedded_review_count) == [1, 2, 3]
    first_three = np.stack(e[e.user_id == "u1"]["embedding"].to_list())
    np.testing.assert_allclose(u1.user_embedding[1], first_three[:2].mean(0), rtol=1e-5)
    assert (u1.share_positive[2], u1.share_neutral[2], u1.share_negative[2]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    # aspects with the sentiment of their clauses (labels from the stars here): tone and amp liked,
    # string and tuning not; the amp, mentioned twice, leads once the third review is in
    assert list(u1.interest_tags) == [
        "tone +, amp +",
        "string -, tuning -, tone +, amp +",
        "amp +, pedal ~, string -, tuning -, tone +",
    ]
    assert (out.sentiment_source == "ratings").all()


def test_item_text_profile_running_mean():
    e = embedded_frame()
    out = compute_item_text_profile(e)
    a = out[out.item_id == "a"].reset_index(drop=True)
    np.testing.assert_allclose(
        a.item_embedding[1], np.stack(e[e.item_id == "a"]["embedding"].to_list()).mean(0), rtol=1e-5
    )


def test_snapshots_never_depend_on_later_data():
    """Point-in-time correctness of the jobs: recomputing with only the data up to
    each snapshot's time gives that snapshot exactly."""
    rng = np.random.default_rng(1)
    days = pd.date_range("2013-01-01", periods=200, freq="D", tz="UTC")
    r = reviews_frame(
        [
            (
                f"u{rng.integers(3)}",
                days[rng.integers(200)],
                int(rng.integers(1, 6)),
                int(rng.integers(3)),
                3,
                int(rng.integers(10, 300)),
            )
            for _ in range(60)
        ]
    )
    full = compute_user_behavior(r, EMPTY_EVENTS)
    items = r.rename(columns={"user_id": "item_id"})[["item_id", "event_timestamp", "rating"]]
    full_items = compute_item_stats(items)
    for cut in days[30::25]:
        part = compute_user_behavior(r[r.event_timestamp <= cut], EMPTY_EVENTS)
        expected = full[full.event_timestamp <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(part.reset_index(drop=True), expected, check_dtype=False)
        part_items = compute_item_stats(items[items.event_timestamp <= cut])
        pd.testing.assert_frame_equal(
            part_items.reset_index(drop=True),
            full_items[full_items.event_timestamp <= cut].reset_index(drop=True),
            check_dtype=False,
        )


def test_popularity_ranks_equal_a_direct_count():
    rng = np.random.default_rng(0)
    items = rng.choice([f"i{k}" for k in range(40)], size=3000, p=np.repeat([0.05, 0.01, 0.02], [10, 10, 20]))
    counts: dict[str, int] = {}
    expected = []
    for item in items:
        counts[item] = counts.get(item, 0) + 1
        expected.append(1 + sum(c > counts[item] for c in counts.values()))
    assert popularity_ranks(items).tolist() == expected
