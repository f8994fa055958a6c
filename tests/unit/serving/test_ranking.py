"""/recommend's ranking (serving.ranking) finds through the candidate index exactly
the top items a pass over every item finds, for histories, weights and snapshots
whose item order is not the graph's."""

import numpy as np
import pytest

from portrait.features.rating_inputs import normalize
from registry.recommender import EVENT_TYPES, Interactions, ItemGraph
from serving.online import ItemSnapshot
from serving.ranking import GraphRows, exact, rank, why


class Model:
    """The rating model's ranking half (registry.rating_model.RatingModel's attributes)."""

    def __init__(self, graph: ItemGraph, weights: dict[str, float]) -> None:
        self.graph, self.weights = graph, weights

    def blend_for(self, history_length: int) -> dict[str, float]:
        return self.weights


def world(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    graph_items = [f"item-{j:04d}" for j in range(n)]
    users = np.repeat(np.arange(300), 6)
    inter = Interactions(
        users,
        rng.integers(0, n, len(users)),
        np.arange(len(users), dtype=float),
        rng.integers(0, len(EVENT_TYPES), len(users)),
        graph_items,
    )
    graph = ItemGraph.fit(inter)
    snapshot_items = list(rng.permutation(graph_items[: n - 20])) + [f"new-{j}" for j in range(30)]  # other order
    emb = normalize(rng.normal(size=(len(snapshot_items), 8)).astype(np.float32))
    emb[rng.random(len(snapshot_items)) < 0.1] = 0
    counts = rng.integers(0, 50, len(snapshot_items)).astype(float)  # ties in popularity
    counts[:5] = np.nan
    return rng, graph, ItemSnapshot(snapshot_items, emb, {"item_review_count": counts}), graph_items


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "weights",
    [
        {"transitions": 1.0, "item_item": 0.0, "text": 0.0, "popularity": 0.0},
        {"transitions": 2.0, "item_item": 4.0, "text": 8.0, "popularity": 1.0},
        {"transitions": 0.0, "item_item": 0.0, "text": 0.0, "popularity": 1.0},
        {"transitions": 1.0, "item_item": 0.5, "text": 0.0, "popularity": 0.1},
        {"transitions": 0.0, "item_item": 0.0, "text": 0.0, "popularity": 0.0},
    ],
)
def test_rank_finds_what_a_pass_over_every_item_finds(seed, weights):
    rng, graph, items, graph_items = world(seed)
    model, rows = Model(graph, weights), GraphRows()
    for _ in range(20):
        history = [
            (str(graph_items[j]), EVENT_TYPES[rng.integers(0, 4)]) for j in rng.integers(0, 400, rng.integers(0, 6))
        ]
        history.append(("never-seen-item", "review"))  # unknown to the graph: skipped
        query = normalize(rng.normal(size=(1, 8)).astype(np.float32))[0] if rng.random() < 0.7 else None
        excluded = items.rows(sorted({i for i, _ in history}))
        excluded = excluded[excluded >= 0]
        got = rank(items, model, rows, history, query, excluded, 10)
        assert got.rows.tolist() == exact(items, model, rows, history, query, excluded, 10).tolist()
        assert not np.isin(got.rows, excluded).any()
        assert np.all(np.diff(got.scores) <= 1e-12)
        assert all(isinstance(why(got.parts, i), str) for i in range(len(got.rows)))


def test_the_history_lifts_what_followed_its_items():
    # shoppers went 0 -> 1 (and 0 -> 2 once); 3 is the most reviewed
    seqs = [[0, 1]] * 5 + [[0, 2]]
    user = np.repeat(np.arange(len(seqs)), 2)
    inter = Interactions(
        user, np.array(sum(seqs, [])), np.arange(12, dtype=float), np.zeros(12, np.int64), ["a", "b", "c", "d"]
    )
    graph = ItemGraph.fit(inter)
    items = ItemSnapshot(
        ["d", "c", "b", "a"], np.zeros((4, 0), np.float32), {"item_review_count": np.array([90.0, 1, 2, 3])}
    )
    model = Model(graph, {"transitions": 4.0, "item_item": 0.0, "text": 0.0, "popularity": 0.1})
    got = rank(items, model, GraphRows(), [("a", "review")], None, items.rows(["a"]), 3)
    assert [items.item_ids[j] for j in got.rows] == ["b", "c", "d"]
    assert why(got.parts, 0).startswith("shoppers went on") and why(got.parts, 2) == "popular"
