"""/recommend's ranking: the rating model's blend (registry.recommender) over the
user's history and text portrait, found without a pass over every item.

Only the items the history points to (the graph's transitions and item-item
neighbours of the history's items) can score above their prior
text * cosine + popularity * log1p(reviews); every other item scores exactly its
prior. So the top k of all items are among those items plus the top
k + len(them) by prior, which the candidate index answers (serving.candidates;
exact below its IVF threshold). The candidates are scored exactly as training's
evaluation scores every item, ties to the lower item row."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from registry.recommender import EVENT_TYPES, blend, popularity_prior, top_k

if TYPE_CHECKING:
    from registry.rating_model import RatingModel
    from registry.recommender import BlendWeights, ItemGraph
    from serving.online import ItemSnapshot

REVIEW_COUNT = "item_review_count"


class GraphRows:
    """The snapshot row of each graph item (-1 where the snapshot lacks it), kept for
    one (graph, snapshot) pair: the lookup is a pass over the graph's items."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._rows = np.zeros(0, dtype=np.int64)
        self._codes: dict[str, int] = {}

    def get(self, graph: ItemGraph, items: ItemSnapshot) -> tuple[np.ndarray, dict[str, int]]:
        with self._lock:
            if self._key != (id(graph), id(items)):
                self._rows = items.rows(graph.items)
                self._codes = {item: code for code, item in enumerate(graph.items)}
                self._key = (id(graph), id(items))
            return self._rows, self._codes


@dataclass
class Ranked:
    rows: np.ndarray  # the top items' snapshot rows, best first
    scores: np.ndarray
    parts: dict[str, np.ndarray]  # each part's (weighted) contribution to the top items' scores


def behaviour_rows(
    graph: ItemGraph | None, graph_rows: GraphRows, items: ItemSnapshot, history: list[tuple[str, str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The snapshot rows the history points to, with their transitions and item-item scores."""
    if graph is None or not history:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    rows_of, codes = graph_rows.get(graph, items)
    known = [(codes[i], EVENT_TYPES.index(t)) for i, t in history if i in codes and t in EVENT_TYPES]
    if not known:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    trans, item_item = graph.scores([c for c, _ in known], [t for _, t in known])
    trans, item_item = sp.csr_matrix(trans), sp.csr_matrix(item_item)
    trans.sort_indices()
    item_item.sort_indices()
    graph_cols = np.union1d(trans.indices, item_item.indices)
    rows = rows_of[graph_cols]
    keep = rows >= 0
    graph_cols = graph_cols[keep]
    return rows[keep], _values_at(trans, graph_cols), _values_at(item_item, graph_cols)


def _values_at(row: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    """A sparse row's values at the given columns (0 where it has none); its indices sorted."""
    out = np.zeros(len(cols))
    if row.nnz:
        pos = np.minimum(np.searchsorted(row.indices, cols), row.nnz - 1)
        found = row.indices[pos] == cols
        out[found] = row.data[pos[found]]
    return out


def review_counts(items: ItemSnapshot) -> np.ndarray:
    """Each item's review count (NaN for all when the snapshot has none)."""
    counts = items.stats.get(REVIEW_COUNT)
    return counts if counts is not None else np.full(items.candidates.size, np.nan)


TIE = 1e-5  # priors this close may come back from the float32 index in either order


def prior_of(items: ItemSnapshot, query: np.ndarray | None, weights: BlendWeights, rows: np.ndarray) -> np.ndarray:
    """The blend's text and popularity parts of these rows (what the index ranks by)."""
    text = items.candidates.affinity(query, rows) if query is not None else np.full(len(rows), np.nan)
    pop = popularity_prior(review_counts(items)[rows])
    zeros = np.zeros(len(rows))
    return blend(zeros, zeros, text, pop, weights)


def top_by_prior(
    items: ItemSnapshot, query: np.ndarray | None, weights: BlendWeights, excluded: np.ndarray, n: int
) -> np.ndarray:
    """At least the n allowed items with the highest prior, and every item tied with
    the n-th (popularity ties are common: the exact pass breaks them by row, the index
    in its own order), fetching twice as many until the last fetched falls below it."""
    prior_weights = {"affinity": float(weights["text"]), "popularity": float(weights["popularity"])}
    fetch = n
    while True:
        rows = items.candidates.top(query, prior_weights, excluded, fetch)  # type: ignore[arg-type]
        if len(rows) < fetch or not (prior_weights["affinity"] or prior_weights["popularity"]) or n == 0:
            return rows  # every allowed item, or all priors 0 (the index gives the lowest rows)
        prior = prior_of(items, query, weights, rows)
        if prior.min() < np.sort(prior)[::-1][n - 1] - TIE:
            return rows
        fetch *= 2


def rank(
    items: ItemSnapshot,
    model: RatingModel,
    graph_rows: GraphRows,
    history: list[tuple[str, str]],
    query: np.ndarray | None,
    excluded: np.ndarray,
    k: int,
) -> Ranked:
    """The top k of every item by the model's blend for this user (query: the
    normalized text portrait, None without one)."""
    weights = model.blend_for(len(history))
    b_rows, b_trans, b_ii = behaviour_rows(model.graph, graph_rows, items, history)
    allowed_b = ~np.isin(b_rows, excluded)
    b_rows, b_trans, b_ii = b_rows[allowed_b], b_trans[allowed_b], b_ii[allowed_b]
    by_prior = top_by_prior(items, query, weights, excluded, k + len(b_rows))
    cand = np.union1d(b_rows, by_prior).astype(np.int64)  # ascending rows: ties go to the lower row
    trans, item_item = np.zeros(len(cand)), np.zeros(len(cand))
    pos = np.searchsorted(cand, b_rows)
    trans[pos], item_item[pos] = b_trans, b_ii
    text = items.candidates.affinity(query, cand) if query is not None else np.full(len(cand), np.nan)
    pop = popularity_prior(review_counts(items)[cand])
    scores = blend(trans, item_item, text, pop, weights)  # the same sum as exact()'s, item by item
    order = np.argsort(-scores, kind="stable")[:k]
    parts = {
        "transitions": weights["transitions"] * trans[order],
        "item_item": weights["item_item"] * item_item[order],
        "text": weights["text"] * np.nan_to_num(text[order], nan=0.0),
        "popularity": weights["popularity"] * pop[order],
    }
    return Ranked(cand[order], scores[order], {**parts, "affinity": text[order]})


WHY = {
    "transitions": "shoppers went on to it after your recent items",
    "item_item": "often chosen with items you have",
    "text": "close to what you wrote in your reviews",
    "popularity": "popular",
}


def why(parts: dict[str, np.ndarray], i: int) -> str:
    """The part that added most to the i-th item's score, in words."""
    name = max(WHY, key=lambda p: float(parts[p][i]))
    return WHY[name] if parts[name][i] > 0 else "in the catalog"


def exact(
    items: ItemSnapshot,
    model: RatingModel,
    graph_rows: GraphRows,
    history: list[tuple[str, str]],
    query: np.ndarray | None,
    excluded: np.ndarray,
    k: int,
) -> np.ndarray:
    """rank()'s answer by a pass over every item (what training's evaluation does):
    the top k rows. For tests and bench/recommend.py, never on the request path."""
    n = items.candidates.size
    weights = model.blend_for(len(history))
    trans, item_item = np.zeros(n), np.zeros(n)
    b_rows, b_trans, b_ii = behaviour_rows(model.graph, graph_rows, items, history)
    trans[b_rows], item_item[b_rows] = b_trans, b_ii
    text = items.candidates.affinity(query, np.arange(n)) if query is not None else np.full(n, np.nan)
    pop = popularity_prior(review_counts(items))
    allowed = np.ones(n, dtype=bool)
    allowed[excluded] = False
    return top_k(blend(trans, item_item, text, pop, weights), allowed, k)
