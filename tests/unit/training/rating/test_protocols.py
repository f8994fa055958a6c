"""The ranking protocols (training.rating.protocols): leave-one-out and rolling
splits without leakage, the metrics with ties, the paired bootstrap, and the blend
chosen on validation."""

import numpy as np
import pandas as pd
import pytest

from registry.recommender import DEFAULT_PARAMS, ItemGraph
from training.rating.protocols import (
    POPULARITY,
    EvalSet,
    Shop,
    blended,
    choose_weights,
    evaluate,
    frozen,
    leave_one_out,
    paired_ratio,
    prepare,
    rolling,
    unit_metrics,
)

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2014-01-01", tz="UTC")


def shop_of(rows: list[tuple[str, str, int, str]]) -> Shop:
    """rows: (user, item, day, event type); every review gets a small embedding."""
    rng = np.random.default_rng(0)
    return Shop.from_frame(
        pd.DataFrame(
            {
                "user_id": [r[0] for r in rows],
                "item_id": [r[1] for r in rows],
                "event_timestamp": [T0 + r[2] * DAY for r in rows],
                "event_type": [r[3] for r in rows],
                "embedding": [rng.normal(size=4).astype(np.float32) if r[3] == "review" else None for r in rows],
            }
        )
    )


def code(shop: Shop, item: str) -> int:
    return shop.inter.items.index(item)


def test_leave_one_out_never_lets_a_held_out_review_feed_popularity_transitions_or_ease():
    # every other user goes a -> x after their own history; "x" is u1's last review only
    rows = [("u1", "a", 0, "review"), ("u1", "b", 1, "review"), ("u1", "c", 2, "review"), ("u1", "x", 3, "review")]
    rows += [(f"v{i}", it, d, "review") for i in range(3) for d, it in enumerate("abc")]
    shop = shop_of(rows)
    test = leave_one_out(shop, 1, "test")
    u1 = shop.users.index("u1")
    [r] = [i for i, u in enumerate(test.unit_user) if u == u1]
    assert test.relevant[r].tolist() == [code(shop, "x")]
    x_rows = np.flatnonzero(shop.inter.item == code(shop, "x"))
    assert not test.fit[x_rows].any()  # the held-out review is not fit on
    assert shop.inter.item[test.histories[r]].tolist() == [code(shop, i) for i in "abc"]
    graph = ItemGraph.fit(shop.inter.subset(test.fit), DEFAULT_PARAMS)
    assert graph.transitions[:, code(shop, "x")].nnz == 0 and graph.item_item[:, code(shop, "x")].nnz == 0
    prepared = prepare(shop, test, graph)
    assert prepared.parts["popularity"][r, code(shop, "x")] == 0  # no review of x in the fit data
    assert not prepared.allowed[r, code(shop, "x")]  # not in the catalog the fit data knows: a miss for all
    val = leave_one_out(shop, 2, "val")
    [rv] = [i for i, u in enumerate(val.unit_user) if u == u1]
    assert val.relevant[rv].tolist() == [code(shop, "c")]
    assert not val.fit[np.flatnonzero(shop.inter.item == code(shop, "x"))].any()  # after the target: out too


def test_rolling_scores_each_review_from_the_history_up_to_it():
    rows = [("u1", "a", 0, "review"), ("u1", "v", 10, "view"), ("u1", "b", 11, "review"), ("u1", "c", 12, "review")]
    rows += [("u2", "a", 1, "review"), ("u2", "a", 11, "view")]  # a repeat: not a new item, not a case
    shop = shop_of(rows)
    start = (T0 + 10 * DAY).timestamp()
    es = rolling(shop, start, None, "test")
    assert len(es) == 2  # u1's b and c; u2's view is no review and a is not new
    histories = [shop.inter.item[h].tolist() for h in es.histories]
    assert histories == [[code(shop, i) for i in "av"], [code(shop, i) for i in "avb"]]
    assert not es.fit[shop.inter.t >= start].any() and es.fit[shop.inter.t < start].all()
    snap = frozen(shop, start, None, "test")
    assert [r.tolist() for r in snap.relevant] == [sorted([code(shop, "b"), code(shop, "c")])]


def test_ranks_break_ties_by_item_code_and_relevant_items_outside_the_catalog_miss():
    scores = np.zeros((3, 5))
    allowed = np.ones((3, 5), dtype=bool)
    allowed[2, 4] = False
    m = unit_metrics(scores, allowed, [np.array([0]), np.array([3]), np.array([4])], k=3)
    assert m.ndcg[0] == 1.0 and m.mrr[0] == 1.0 and m.recall[0] == 1.0
    assert m.recall[1] == 0.0  # rank 3 (codes 0, 1, 2 first) is outside the top 3
    assert m.ndcg[2] == 0.0  # not allowed: a miss
    multi = unit_metrics(np.array([[3.0, 2.0, 1.0, 0.0]]), np.ones((1, 4), bool), [np.array([0, 2])], k=2)
    assert multi.ndcg[0] == pytest.approx(1.0 / (1.0 + 1.0 / np.log2(3)))
    assert multi.recall[0] == 0.5 and multi.mrr[0] == 1.0


def test_the_paired_bootstrap_resamples_users_and_brackets_the_ratio():
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(200), 3)
    base = rng.uniform(0, 1, 600)
    assert paired_ratio(2 * base, base, users) == pytest.approx((2.0, 2.0, 2.0))
    model = base * rng.uniform(0.8, 1.6, 600)
    ratio, low, high = paired_ratio(model, base, users)
    assert low < ratio < high and ratio == pytest.approx(model.sum() / base.sum())
    assert np.isnan(paired_ratio(model, np.zeros(600), users)[0])


def _learnable_set() -> tuple[EvalSet, EvalSet]:
    """Targets that the transitions part predicts and popularity does not."""
    rng = np.random.default_rng(2)
    n_units, n_items = 60, 30

    def one() -> EvalSet:
        target = rng.integers(10, n_items, n_units)
        trans = rng.uniform(0, 0.5, (n_units, n_items))
        trans[np.arange(n_units), target] = 1.0
        pop = np.tile(np.linspace(3, 0, n_items), (n_units, 1))
        es = EvalSet(
            "t",
            np.ones(1, bool),
            np.arange(n_units),
            [np.zeros(0, np.int64)] * n_units,
            [np.array([t]) for t in target],
        )
        zeros = np.zeros((n_units, n_items))
        es.parts = {"transitions": trans, "item_item": zeros, "text": zeros, "popularity": pop}
        es.allowed = np.ones((n_units, n_items), dtype=bool)
        return es

    return one(), one()


def test_the_blend_is_chosen_on_validation_and_equals_a_part_when_its_weight_is_one():
    val, test = _learnable_set()
    weights, best = choose_weights(val, 3)
    assert weights["transitions"] > 0 and best == pytest.approx(1.0)
    assert evaluate(test, weights, 3).mean()["ndcg"] == pytest.approx(1.0)
    assert evaluate(test, POPULARITY, 3).mean()["ndcg"] == 0.0  # the targets are never the popular items
    only = {"transitions": 1.0, "item_item": 0.0, "text": 0.0, "popularity": 0.0}
    assert np.array_equal(blended(test, only), test.parts["transitions"])
    w, _ = choose_weights(val, 3, ("text", "popularity"))
    assert w["transitions"] == 0.0  # a part left out stays out


def test_a_blend_is_kept_only_when_validation_shows_it_beats_popularity():
    from training.rating.config import RatingConfig
    from training.rating.ranking import guarded

    val, _ = _learnable_set()
    everyone = np.ones(len(val), dtype=bool)
    assert guarded(val, ("transitions", "popularity"), everyone, RatingConfig(k=3))["transitions"] > 0
    rng = np.random.default_rng(5)
    noise, _ = _learnable_set()
    noise.parts["transitions"] = rng.uniform(0, 1, noise.parts["transitions"].shape)  # says nothing of the targets
    noise.relevant = [np.array([int(rng.integers(0, 3))]) for _ in range(len(noise))]  # the popular items, mostly
    assert guarded(noise, ("transitions", "popularity"), everyone, RatingConfig(k=3)) == POPULARITY
