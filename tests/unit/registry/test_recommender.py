"""The behaviour structures (registry.recommender): transitions follow the order of
what shoppers did, EASE and both stay sparse, a history reads them, the graph
survives its trip through the logged model, and the blend equals its parts."""

import numpy as np
import pytest

from registry import recommender
from registry.recommender import DEFAULT_PARAMS, EVENT_TYPES, Interactions, ItemGraph, blend

REVIEW, VIEW = EVENT_TYPES.index("review"), EVENT_TYPES.index("view")


def interactions(sequences: list[list[int]], kind: int = REVIEW, items: int = 6) -> Interactions:
    user, item, t = [], [], []
    for u, seq in enumerate(sequences):
        user += [u] * len(seq)
        item += seq
        t += [float(100 * u + s) for s in range(len(seq))]
    return Interactions(
        np.array(user), np.array(item), np.array(t), np.full(len(t), kind), [f"i{j}" for j in range(items)]
    )


def test_transitions_weight_the_next_item_above_the_one_after_it_and_never_an_item_itself():
    graph = ItemGraph.fit(interactions([[0, 1, 2], [0, 1, 2], [0, 0, 3]]))
    t = graph.transitions.toarray()
    assert t[0, 1] > t[0, 2] > 0 and t[0, 0] == 0
    assert np.allclose(t.sum(axis=1)[t.sum(axis=1) > 0], 1.0)  # shares of what followed
    assert t[2].sum() == 0  # nothing came after 2


def test_event_weights_count_in_the_fit_and_zero_leaves_a_type_out():
    inter = interactions([[0, 1], [0, 1]], kind=VIEW)
    assert ItemGraph.fit(inter).transitions[0, 1] > 0
    off = {**DEFAULT_PARAMS, "event_weights": {**DEFAULT_PARAMS["event_weights"], "view": 0.0}}
    assert ItemGraph.fit(inter, off).transitions.nnz == 0


def test_the_structures_keep_at_most_their_neighbours_per_item(monkeypatch):
    monkeypatch.setattr(recommender, "NEIGHBOURS", 3)
    rng = np.random.default_rng(0)
    graph = ItemGraph.fit(interactions([list(rng.choice(40, 8, replace=False)) for _ in range(200)], items=40))
    for m in (graph.transitions, graph.item_item):
        assert np.diff(m.indptr).max() <= 3 and (m.data > 0).all()


def test_ease_is_fit_on_the_most_interacted_items_only(monkeypatch):
    monkeypatch.setattr(recommender, "EASE_ITEMS", 3)
    seqs = [[0, 1, 2], [0, 1, 2], [1, 2, 0], [3, 4], [0, 1]]
    e = ItemGraph.fit(interactions(seqs)).item_item.toarray()
    assert e[3:, :].sum() == 0 and e[:, 3:].sum() == 0 and e[:3, :3].sum() > 0


def test_a_history_reads_the_last_item_strongest_and_scores_are_divided_by_their_maximum():
    graph = ItemGraph.fit(interactions([[0, 1], [0, 1], [2, 3], [2, 3]]))
    trans, item_item = graph.scores([0, 2], [REVIEW, REVIEW])  # 2 is the last
    t = trans.toarray().ravel()
    assert t.max() == pytest.approx(1.0) and t[3] > t[1] > 0
    assert item_item.toarray().max() == pytest.approx(1.0)
    many_t, _ = graph.scores_many([(np.array([0, 2]), np.array([REVIEW, REVIEW])), (np.array([1]), np.array([REVIEW]))])
    assert np.allclose(many_t.toarray()[0], t)


def test_the_graph_round_trips_through_its_file(tmp_path):
    graph = ItemGraph.fit(interactions([[0, 1, 2], [2, 1, 0], [3, 4, 5]]))
    graph.save(str(tmp_path / "neighbours.npz"))
    back = ItemGraph.load(str(tmp_path / "neighbours.npz"), graph.params)
    assert back.items == graph.items
    assert (back.transitions != graph.transitions).nnz == 0 and (back.item_item != graph.item_item).nnz == 0


@pytest.mark.parametrize("part", ["transitions", "item_item", "text", "popularity"])
def test_the_blend_equals_a_part_when_its_weight_is_one_and_the_others_zero(part):
    rng = np.random.default_rng(3)
    values = {p: rng.uniform(size=7) for p in ("transitions", "item_item", "text", "popularity")}
    values["text"][2] = np.nan  # missing counts as 0
    weights = {p: float(p == part) for p in values}
    out = blend(values["transitions"], values["item_item"], values["text"], values["popularity"], weights)
    assert np.allclose(out, np.nan_to_num(values[part]))
