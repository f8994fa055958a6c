"""The behaviour half of /recommend's ranking: what shoppers did after the user's
last items (sequential transitions) and what is bought with them (EASE item-item),
fit on the shop's interactions before a cutoff and logged inside the rating model
(neighbours.npz), so that serving ranks exactly as training evaluated.

A user's score for item j is the blend

    w_transitions * T(j) + w_item_item * E(j) + w_text * cosine(user, j) + w_popularity * log1p(reviews of j)

T: the transitions out of the user's history items, the last one weighted 1, the
one before it `recency`, then recency^2 ... (each history item also weighted by its
event type); E: the user's history (one weight per item: its strongest event type)
times EASE's item-item matrix. T and E are each divided by their maximum for the
user, so the weights compare parts on one scale. Both structures keep only the
top NEIGHBOURS entries per item (sparse), so they fit the candidate index's
memory budget at 10^6 items; EASE is fit on the EASE_ITEMS most-interacted items
(a dense inverse of their Gram matrix), the tail gets transitions, text and
popularity. Pure numpy/scipy: training, serving and the benches share it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import scipy.sparse as sp

EVENT_TYPES = ("review", "purchase", "cart", "view")
NEIGHBOURS = 100  # kept per item in each structure
EASE_ITEMS = 5_000  # the dense Gram inverse: 5,000^2 float64 = 200 MB while fitting, freed after
TRANSITION_WINDOW = 3  # an interaction counts as following each of the user's 3 before it (weight 1/distance)


# The blend's weight of each part (PARTS), chosen on validation by training.
BlendWeights = dict[str, float]


class GraphParams(TypedDict):
    """How the behaviour structures are fit and read (chosen on validation)."""

    recency: float  # weight of the history item one step further back
    ease_lambda: float
    event_weights: dict[str, float]  # per event type, for fitting and for the history


PARTS = ("transitions", "item_item", "text", "popularity")
DEFAULT_PARAMS: GraphParams = {
    "recency": 0.5,
    "ease_lambda": 200.0,
    "event_weights": {"review": 1.0, "purchase": 1.0, "cart": 0.5, "view": 0.25},
}


@dataclass
class Interactions:
    """Who did what to which item when, in time order (ties in the order given).
    item: codes into `items`; kind: codes into EVENT_TYPES; t: unix seconds."""

    user: np.ndarray
    item: np.ndarray
    t: np.ndarray
    kind: np.ndarray
    items: list[str]

    def __post_init__(self) -> None:
        order = np.lexsort((np.arange(len(self.t)), self.t))  # stable by time
        for name in ("user", "item", "t", "kind"):
            setattr(self, name, np.asarray(getattr(self, name))[order])

    def __len__(self) -> int:
        return len(self.t)

    def subset(self, mask: np.ndarray) -> Interactions:
        return Interactions(self.user[mask], self.item[mask], self.t[mask], self.kind[mask], self.items)


def kind_weights(kinds: np.ndarray, event_weights: dict[str, float]) -> np.ndarray:
    table = np.array([float(event_weights.get(name, 0.0)) for name in EVENT_TYPES])
    return table[np.asarray(kinds, dtype=np.int64)]


def _top_per_row(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """The n largest positive entries of each row."""
    m = sp.csr_matrix(m)
    m.data[m.data <= 0] = 0
    m.eliminate_zeros()
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        if hi == lo:
            continue
        data, idx = m.data[lo:hi], m.indices[lo:hi]
        keep = np.argsort(-data, kind="stable")[:n] if hi - lo > n else slice(None)
        rows.append(np.full(len(idx[keep]), r))
        cols.append(idx[keep])
        vals.append(data[keep])
    if not rows:
        return sp.csr_matrix(m.shape, dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape
    )


def fit_transitions(inter: Interactions, event_weights: dict[str, float]) -> sp.csr_matrix:
    """T[i, j]: how often (weighted) a user's next interactions after i were j, within
    TRANSITION_WINDOW steps (1/distance), row-normalized to shares, top NEIGHBOURS kept."""
    n = len(inter.items)
    order = np.lexsort((np.arange(len(inter)), inter.t, inter.user))  # by user, then time
    user, item, w = inter.user[order], inter.item[order], kind_weights(inter.kind[order], event_weights)
    rows, cols, vals = [], [], []
    for d in range(1, TRANSITION_WINDOW + 1):
        same = (user[:-d] == user[d:]) & (item[:-d] != item[d:])
        rows.append(item[:-d][same])
        cols.append(item[d:][same])
        vals.append(w[d:][same] / d)
    counts = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n), dtype=np.float64
    )
    totals = np.asarray(counts.sum(axis=1)).ravel()
    shares = sp.diags(1.0 / np.maximum(totals, 1e-12)) @ counts
    return _top_per_row(shares, NEIGHBOURS)


def user_item_matrix(inter: Interactions, event_weights: dict[str, float], users: int | None = None) -> sp.csr_matrix:
    """users x items: each cell the strongest event type's weight (0 for types weighted 0)."""
    n_users = int(users if users is not None else (inter.user.max() + 1 if len(inter) else 0))
    coo = sp.coo_matrix(
        (kind_weights(inter.kind, event_weights), (inter.user, inter.item)), shape=(n_users, len(inter.items))
    )
    # one cell per (user, item): the strongest event type's weight, not their sum
    key = coo.row.astype(np.int64) * max(len(inter.items), 1) + coo.col
    order = np.lexsort((-coo.data, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    pick = order[first]
    out = sp.csr_matrix((coo.data[pick], (coo.row[pick], coo.col[pick])), shape=coo.shape)
    out.eliminate_zeros()
    return out


def fit_ease(x: sp.csr_matrix, ease_lambda: float) -> sp.csr_matrix:
    """EASE (Steck 2019) on the EASE_ITEMS most-interacted items: B = -P / diag(P),
    P = (X'X + lambda I)^-1, zero diagonal; top NEIGHBOURS per row kept (positive)."""
    n = x.shape[1]
    counts = np.asarray((x > 0).sum(axis=0)).ravel()
    head = np.sort(np.argsort(-counts, kind="stable")[: min(EASE_ITEMS, n)])
    head = head[counts[head] > 0]
    if not len(head):
        return sp.csr_matrix((n, n), dtype=np.float32)
    xh = x[:, head]
    gram = (xh.T @ xh).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += ease_lambda
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    del p, gram
    small = _top_per_row(sp.csr_matrix(b), NEIGHBOURS).tocoo()
    return sp.csr_matrix((small.data, (head[small.row], head[small.col])), shape=(n, n), dtype=np.float32)


@dataclass
class ItemGraph:
    """The fitted behaviour structures over `items` and how to read them."""

    items: list[str]
    transitions: sp.csr_matrix
    item_item: sp.csr_matrix
    params: GraphParams

    @classmethod
    def fit(cls, inter: Interactions, params: GraphParams = DEFAULT_PARAMS) -> ItemGraph:
        weights = params["event_weights"]
        return cls(
            inter.items,
            fit_transitions(inter, weights),
            fit_ease(user_item_matrix(inter, weights), params["ease_lambda"]),
            params,
        )

    @property
    def nbytes(self) -> int:
        return sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in (self.transitions, self.item_item))

    def history_vectors(self, items: Iterable[int], kinds: Iterable[int]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """One user's history (item codes and event kinds, oldest first) as two sparse
        rows: recency-weighted for the transitions, strongest-type for EASE. Sparse
        only: a request touches the history's items, not the catalog."""
        items, kinds = np.asarray(list(items), dtype=np.int64), np.asarray(list(kinds), dtype=np.int64)
        n = len(self.items)
        w = kind_weights(kinds, self.params["event_weights"])
        steps_back = np.arange(len(items))[::-1]
        zeros = np.zeros(len(items), dtype=np.int64)
        recent = sp.csr_matrix((w * self.params["recency"] ** steps_back, (zeros, items)), shape=(1, n))
        order = np.lexsort((-w, items))  # per item, its strongest weight first
        first = np.ones(len(order), dtype=bool)
        first[1:] = items[order][1:] != items[order][:-1]
        pick = order[first]
        strongest = sp.csr_matrix((w[pick], (zeros[: len(pick)], items[pick])), shape=(1, n))
        return recent, strongest

    def scores(self, items: Iterable[int], kinds: Iterable[int]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The user's transitions and item-item scores over the graph's items (sparse
        rows, each divided by its maximum): the history's rows of each structure,
        weighted and summed, in time linear in the history's neighbours (a sparse
        product would touch every column of a 10^6-item catalog)."""
        recent, strongest = self.history_vectors(items, kinds)
        n = len(self.items)
        return (
            _unit_row(_row_combination(self.transitions, recent, n)),
            _unit_row(_row_combination(self.item_item, strongest, n)),
        )

    def scores_many(self, histories: list[tuple[np.ndarray, np.ndarray]]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """scores() for many users at once (rows in the order given)."""
        if not histories:
            n = len(self.items)
            return sp.csr_matrix((0, n)), sp.csr_matrix((0, n))
        pairs = [self.history_vectors(items, kinds) for items, kinds in histories]
        recent = sp.vstack([p[0] for p in pairs]).tocsr()
        strongest = sp.vstack([p[1] for p in pairs]).tocsr()
        return _unit_rows(recent @ self.transitions), _unit_rows(strongest @ self.item_item)

    # --- storage inside the logged model ------------------------------------------------

    def save(self, path: str) -> None:
        arrays = {
            "items": np.array(self.items, dtype=object),
            **_csr_arrays("transitions", self.transitions),
            **_csr_arrays("item_item", self.item_item),
        }
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # numpy's stub types the first keyword

    @classmethod
    def load(cls, path: str, params: GraphParams) -> ItemGraph:
        with np.load(path, allow_pickle=True) as z:
            n = len(z["items"])
            return cls(
                [str(i) for i in z["items"]],
                _csr_from(z, "transitions", n),
                _csr_from(z, "item_item", n),
                params,
            )


def _row_combination(m: sp.csr_matrix, weights: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """weights (1 x n, sparse) @ m, from the rows of m that weights names only."""
    weights = sp.csr_matrix(weights)
    rows, w = weights.indices, weights.data
    starts, ends = m.indptr[rows], m.indptr[rows + 1]
    if not len(rows) or not (ends - starts).sum():
        return sp.csr_matrix((1, n), dtype=np.float64)
    idx = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)])
    vals = m.data[idx].astype(np.float64) * np.repeat(w, ends - starts)
    cols, inverse = np.unique(m.indices[idx], return_inverse=True)
    summed = np.bincount(inverse, weights=vals)
    return sp.csr_matrix((summed, cols, np.array([0, len(cols)])), shape=(1, n))


def _csr_arrays(name: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {f"{name}_data": m.data, f"{name}_indices": m.indices, f"{name}_indptr": m.indptr}


def _csr_from(z, name: str, n: int) -> sp.csr_matrix:
    return sp.csr_matrix((z[f"{name}_data"], z[f"{name}_indices"], z[f"{name}_indptr"]), shape=(n, n))


def _unit_row(row: sp.csr_matrix) -> sp.csr_matrix:
    row = sp.csr_matrix(row, dtype=np.float64)
    top = row.data.max() if row.nnz else 0.0
    return row / top if top > 0 else row


def _unit_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float64)
    top = np.asarray(m.max(axis=1).todense()).ravel()
    return sp.diags(np.where(top > 0, 1.0 / np.where(top > 0, top, 1.0), 0.0)) @ m


def blend(
    transitions: np.ndarray, item_item: np.ndarray, text: np.ndarray, popularity: np.ndarray, weights: BlendWeights
) -> np.ndarray:
    """The blend of the parts (arrays of one shape; NaN counts as 0)."""
    parts = {"transitions": transitions, "item_item": item_item, "text": text, "popularity": popularity}
    out = np.zeros(np.shape(text), dtype=np.float64)
    for name, values in parts.items():
        w = float(weights.get(name, 0.0))
        if w:
            out = out + w * np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    return out


def popularity_prior(review_count: np.ndarray) -> np.ndarray:
    """The popularity part: log1p of the item's review count (NaN -> 0)."""
    return np.log1p(np.nan_to_num(np.asarray(review_count, dtype=np.float64), nan=0.0))


def top_k(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k allowed items with the highest score, best first (ties: lower index first)."""
    idx = np.flatnonzero(allowed)
    return idx[np.argsort(-scores[idx], kind="stable")[:k]]
