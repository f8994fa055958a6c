"""Top-k recommendation measured three ways, each a ratio to popularity with a
paired-bootstrap interval over users:

- rolling next-item (the headline, what /recommend serves): the models fit before
  the period; each of its reviews scored from the user's history up to that moment
  (earlier interactions of the period included, as the online store has them);
- leave-one-out (the field's protocol: RecBole, SASRec, Recformer): each user's last
  review held out for test, the one before it for validation, every model fit
  without them;
- frozen snapshot: everything known at the period's start against every item each
  user reviewed in the period (next-period demand).

Every protocol ranks all items (the catalog: items with an interaction in the fit
data), the user's history excluded; ties go to the lower item code. Metrics per
evaluation unit (a held-out review, or a user's period): NDCG@k, Recall@k, MRR@k."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from registry.recommender import (
    EVENT_TYPES,
    PARTS,
    BlendWeights,
    GraphParams,
    Interactions,
    ItemGraph,
    blend,
    popularity_prior,
)

# every interaction in the order serving reads a user's history (portrait.ingest.loader.HISTORY_SQL)
INTERACTIONS_SQL = """
    SELECT user_id, item_id, event_timestamp, event_type, embedding FROM (
        SELECT r.user_id, r.item_id, r.event_timestamp, 'review' AS event_type, e.embedding, 0 AS source,
               r.review_id AS id
        FROM reviews r LEFT JOIN review_embeddings e ON e.review_id = r.review_id AND r.placeholder IS NULL
        UNION ALL
        SELECT user_id, item_id, event_timestamp, event_type, NULL, 1, event_id FROM events
        WHERE item_id IS NOT NULL AND event_type <> 'review'
    ) h ORDER BY event_timestamp, source, id"""


@dataclass
class Shop:
    """Every interaction of the shop (reviews and item events), in time order, with
    each review's text embedding (row into `vectors`, -1 for none)."""

    inter: Interactions
    users: list[str]
    vector_row: np.ndarray
    vectors: np.ndarray

    @property
    def is_review(self) -> np.ndarray:
        return self.inter.kind == EVENT_TYPES.index("review")

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Shop:
        """df: user_id, item_id, event_timestamp, event_type, embedding (array or None), in any order."""
        df = df.sort_values(["event_timestamp"], kind="stable").reset_index(drop=True)
        users, user_codes = np.unique(df["user_id"].to_numpy(str), return_inverse=True)
        items, item_codes = np.unique(df["item_id"].to_numpy(str), return_inverse=True)
        t = pd.to_datetime(df["event_timestamp"], utc=True).astype("int64").to_numpy() / 1e9
        kind = df["event_type"].map({name: i for i, name in enumerate(EVENT_TYPES)}).to_numpy(np.int64)
        has = df["embedding"].map(lambda v: v is not None and len(v) > 0).to_numpy(bool)
        vector_row = np.full(len(df), -1, dtype=np.int64)
        vector_row[has] = np.arange(has.sum())
        vectors = (
            np.stack([np.asarray(v, dtype=np.float32) for v in df.loc[has, "embedding"]])
            if has.any()
            else np.zeros((0, 0), np.float32)
        )
        inter = Interactions(user_codes, item_codes, t, kind, [str(i) for i in items])
        return cls(inter, [str(u) for u in users], vector_row, vectors)

    @classmethod
    def load(cls, engine: sa.Engine) -> Shop:
        with engine.connect() as conn:
            return cls.from_frame(pd.read_sql(sa.text(INTERACTIONS_SQL), conn))


@dataclass
class EvalSet:
    """One protocol's period: the fit data, and per evaluation unit the user, the
    history (interaction rows), and the relevant items."""

    name: str
    fit: np.ndarray  # mask over the shop's interactions
    unit_user: np.ndarray
    histories: list[np.ndarray]  # interaction rows, oldest first
    relevant: list[np.ndarray]  # item codes
    parts: dict[str, np.ndarray] = field(default_factory=dict)  # part name -> units x items
    allowed: np.ndarray | None = None  # units x items

    def __len__(self) -> int:
        return len(self.unit_user)

    def history_length(self) -> np.ndarray:
        return np.array([len(h) for h in self.histories])


def user_rows(inter: Interactions) -> dict[int, np.ndarray]:
    """Each user's interaction rows, oldest first."""
    order = np.lexsort((np.arange(len(inter)), inter.user))
    users, starts = np.unique(inter.user[order], return_index=True)
    return {int(u): rows for u, rows in zip(users, np.split(order, starts[1:]))}


def rolling(shop: Shop, start: float, end: float | None, name: str) -> EvalSet:
    """Each review in [start, end) whose item the user had not interacted with before,
    scored from the user's history up to it; fit on everything before start."""
    inter = shop.inter
    in_period = (inter.t >= start) & (inter.t < (end if end is not None else np.inf)) & shop.is_review
    users, histories, relevant = [], [], []
    for user, rows in user_rows(inter).items():
        for p in np.flatnonzero(in_period[rows]):
            earlier = rows[:p]
            if inter.item[rows[p]] in set(inter.item[earlier].tolist()):
                continue
            users.append(user)
            histories.append(earlier)
            relevant.append(np.array([inter.item[rows[p]]]))
    return EvalSet(name, inter.t < start, np.array(users, dtype=np.int64), histories, relevant)


def leave_one_out(shop: Shop, held_out: int, name: str) -> EvalSet:
    """Users with at least 3 reviews: their `held_out`-th review from the end
    (2: validation, 1: test) is the target; the fit data and the history are
    everything before it for that user (everything for the other users, minus
    their held-out reviews and what came after them)."""
    inter = shop.inter
    fit = np.ones(len(inter), dtype=bool)
    users, histories, relevant = [], [], []
    for user, rows in user_rows(inter).items():
        reviews = rows[shop.is_review[rows]]
        if len(reviews) < 3:
            continue
        target = reviews[-held_out]
        p = int(np.flatnonzero(rows == target)[0])
        fit[rows[p:]] = False
        earlier = rows[:p]
        if inter.item[target] in set(inter.item[earlier].tolist()):
            continue
        users.append(user)
        histories.append(earlier)
        relevant.append(np.array([inter.item[target]]))
    return EvalSet(name, fit, np.array(users, dtype=np.int64), histories, relevant)


def frozen(shop: Shop, start: float, end: float | None, name: str) -> EvalSet:
    """Everything before start against every item each user reviewed in [start, end)
    and had not interacted with before."""
    inter = shop.inter
    before = inter.t < start
    in_period = (inter.t >= start) & (inter.t < (end if end is not None else np.inf)) & shop.is_review
    users, histories, relevant = [], [], []
    for user, rows in user_rows(inter).items():
        earlier = rows[before[rows]]
        seen = set(inter.item[earlier].tolist())
        new = sorted(set(inter.item[rows[in_period[rows]]].tolist()) - seen)
        if new:
            users.append(user)
            histories.append(earlier)
            relevant.append(np.array(new, dtype=np.int64))
    return EvalSet(name, before, np.array(users, dtype=np.int64), histories, relevant)


def sample_units(es: EvalSet, limit: int, seed: int) -> EvalSet:
    """At most `limit` units, a seeded sample of whole users (the bootstrap resamples users)."""
    if len(es) <= limit:
        return es
    rng = np.random.default_rng(seed)
    users = rng.permutation(np.unique(es.unit_user))
    counts = pd.Series(es.unit_user).value_counts().reindex(users).to_numpy()
    keep_users = set(users[: max(1, int(np.searchsorted(np.cumsum(counts), limit, side="right")))].tolist())
    keep = [i for i, u in enumerate(es.unit_user) if int(u) in keep_users]
    return EvalSet(
        es.name,
        es.fit,
        es.unit_user[keep],
        [es.histories[i] for i in keep],
        [es.relevant[i] for i in keep],
    )


# --- the parts, per evaluation unit ------------------------------------------------


def item_vectors(shop: Shop, fit: np.ndarray) -> np.ndarray:
    """Each item's normalized mean review embedding over the fit data (zeros for none)."""
    inter, n = shop.inter, len(shop.inter.items)
    dim = shop.vectors.shape[1] if shop.vectors.size else 0
    rows = np.flatnonzero(fit & (shop.vector_row >= 0))
    sums = np.zeros((n, dim), dtype=np.float64)
    np.add.at(sums, inter.item[rows], shop.vectors[shop.vector_row[rows]])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def user_vectors(shop: Shop, histories: list[np.ndarray]) -> np.ndarray:
    """Each unit's text profile: the normalized mean embedding of its history's reviews."""
    dim = shop.vectors.shape[1] if shop.vectors.size else 0
    out = np.zeros((len(histories), dim), dtype=np.float32)
    for r, rows in enumerate(histories):
        vrows = shop.vector_row[rows]
        vrows = vrows[vrows >= 0]
        if len(vrows):
            v = shop.vectors[vrows].mean(axis=0)
            out[r] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def prepare(shop: Shop, es: EvalSet, graph: ItemGraph) -> EvalSet:
    """The parts (units x items) and the allowed items of every unit."""
    inter = shop.inter
    fit_rows = np.flatnonzero(es.fit)
    catalog = np.zeros(len(inter.items), dtype=bool)
    catalog[inter.item[fit_rows]] = True
    reviews = fit_rows[shop.is_review[fit_rows]]
    counts = np.bincount(inter.item[reviews], minlength=len(inter.items))
    histories = [(inter.item[h], inter.kind[h]) for h in es.histories]
    trans, item_item = graph.scores_many(histories)
    text = user_vectors(shop, es.histories) @ item_vectors(shop, es.fit).T if shop.vectors.size else None
    n_units = len(es)
    allowed = np.repeat(catalog[None, :], n_units, axis=0)
    for r, (items, _) in enumerate(histories):
        allowed[r, items] = False
    es.parts = {
        "transitions": trans.toarray(),
        "item_item": item_item.toarray(),
        "text": text if text is not None else np.zeros((n_units, len(inter.items))),
        "popularity": np.repeat(popularity_prior(counts)[None, :], n_units, axis=0),
    }
    es.allowed = allowed
    return es


# --- metrics ---------------------------------------------------------------------


@dataclass
class UnitMetrics:
    """Per evaluation unit: NDCG@k, Recall@k, MRR@k."""

    ndcg: np.ndarray
    recall: np.ndarray
    mrr: np.ndarray

    def mean(self, mask: np.ndarray | None = None) -> dict[str, float]:
        pick = slice(None) if mask is None else mask
        return {name: float(np.mean(getattr(self, name)[pick])) for name in ("ndcg", "recall", "mrr")}


def unit_metrics(scores: np.ndarray, allowed: np.ndarray, relevant: list[np.ndarray], k: int) -> UnitMetrics:
    """The metrics of ranking `scores` (units x items) over the allowed items; a
    relevant item outside them counts as a miss. Rank of an item: the allowed items
    with a higher score, plus those with an equal score and a lower code."""
    n_units, n_items = scores.shape
    codes = np.arange(n_items)
    discount = 1.0 / np.log2(np.arange(k) + 2)
    if n_units and all(len(r) == 1 for r in relevant):  # one relevant item each: all units at once
        target = np.array([int(r[0]) for r in relevant])
        ranks = np.full(n_units, np.iinfo(np.int64).max)
        for lo in range(0, n_units, 1024):
            rows = np.arange(lo, min(lo + 1024, n_units))
            s, ok, t = scores[rows], allowed[rows], target[rows]
            v = s[np.arange(len(rows)), t][:, None]
            higher = ok & ((s > v) | ((s == v) & (codes[None, :] < t[:, None])))
            ranks[rows] = np.where(ok[np.arange(len(rows)), t], higher.sum(axis=1), ranks[rows])
        hit = ranks < k
        ndcg = np.where(hit, discount[np.minimum(ranks, k - 1)], 0.0)
        return UnitMetrics(ndcg, hit.astype(float), np.where(hit, 1.0 / (np.minimum(ranks, k - 1) + 1), 0.0))
    ndcg, recall, mrr = np.zeros(n_units), np.zeros(n_units), np.zeros(n_units)
    for r in range(n_units):
        rel = relevant[r]
        s, ok = scores[r], allowed[r]
        ranks = np.full(len(rel), np.iinfo(np.int64).max)
        for j, item in enumerate(rel):
            if ok[item]:
                v = s[item]
                ranks[j] = int(np.count_nonzero(ok & ((s > v) | ((s == v) & (codes < item)))))
        hits = ranks[ranks < k]
        ideal = discount[: min(k, len(rel))].sum()
        ndcg[r] = discount[hits].sum() / ideal
        recall[r] = len(hits) / len(rel)
        mrr[r] = 1.0 / (ranks.min() + 1) if len(hits) else 0.0
    return UnitMetrics(ndcg, recall, mrr)


def blended(es: EvalSet, weights: dict[str, float]) -> np.ndarray:
    """The served blend (registry.recommender.blend) of the evaluation set's parts."""
    p = es.parts
    return blend(p["transitions"], p["item_item"], p["text"], p["popularity"], weights)


def evaluate(es: EvalSet, weights: dict[str, float], k: int) -> UnitMetrics:
    assert es.allowed is not None, "prepare() the evaluation set first"
    return unit_metrics(blended(es, weights), es.allowed, es.relevant, k)


def paired_ratio(
    model: np.ndarray, base: np.ndarray, users: np.ndarray, rounds: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """mean(model) / mean(base) with a paired-bootstrap interval (95% unless `level`
    says otherwise), resampling users (all of a user's units together): (ratio, low, high)."""
    if not len(model) or not base.sum():
        return float("nan"), float("nan"), float("nan")
    codes, inverse = np.unique(users, return_inverse=True)
    m = np.bincount(inverse, weights=model, minlength=len(codes))
    b = np.bincount(inverse, weights=base, minlength=len(codes))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(codes), size=(rounds, len(codes)))
    ms, bs = m[draws].sum(axis=1), b[draws].sum(axis=1)
    ratios = ms[bs > 0] / bs[bs > 0]
    tail = 100 * (1 - level) / 2
    return float(m.sum() / b.sum()), float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail))


# --- choosing the blend on validation -----------------------------------------------

WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
POPULARITY = {"transitions": 0.0, "item_item": 0.0, "text": 0.0, "popularity": 1.0}


def choose_weights(
    es: EvalSet, k: int, parts: tuple[str, ...] = PARTS, mask: np.ndarray | None = None, passes: int = 3
) -> tuple[dict[str, float], float]:
    """Coordinate ascent on NDCG@k over the units in mask, one part at a time over
    WEIGHT_GRID (popularity 0 or 1: the scale is the others'); starts at popularity.
    Parts not named stay 0. Returns (weights, validation NDCG@k)."""
    weights = {name: (1.0 if name == "popularity" and "popularity" in parts else 0.0) for name in es.parts}
    if "popularity" not in parts:
        weights[parts[0]] = 1.0

    def score(w: dict[str, float]) -> float:
        return evaluate(es, w, k).mean(mask)["ndcg"]

    best = score(weights)
    for _ in range(passes):
        improved = False
        for name in parts:
            grid = (0.0, 1.0) if name == "popularity" else WEIGHT_GRID
            for value in grid:
                trial = {**weights, name: value}
                if not any(trial.values()):
                    continue
                s = score(trial)
                if s > best + 1e-9:
                    best, weights, improved = s, trial, True
        if not improved:
            break
    return weights, best


def as_blend(weights: dict[str, float]) -> BlendWeights:
    return {
        "transitions": float(weights.get("transitions", 0.0)),
        "item_item": float(weights.get("item_item", 0.0)),
        "text": float(weights.get("text", 0.0)),
        "popularity": float(weights.get("popularity", 0.0)),
    }


PARAM_GRID: dict[str, tuple] = {"recency": (0.25, 0.5, 1.0), "ease_lambda": (50.0, 200.0, 800.0)}
EVENT_WEIGHT_GRID = (0.0, 0.25, 1.0)


def choose_params(
    shop: Shop, make_val: Callable[[], EvalSet], params: GraphParams, k: int
) -> tuple[GraphParams, dict[str, float], EvalSet]:
    """The graph's parameters, one at a time, each with the blend re-chosen, on the
    validation set; the event types the shop has (besides reviews) get a weight each."""

    def trial(p: GraphParams) -> tuple[float, dict[str, float], EvalSet]:
        val = make_val()  # a fresh set per trial: prepare() fills its parts
        es = prepare(shop, val, ItemGraph.fit(shop.inter.subset(val.fit), p))
        w, s = choose_weights(es, k, passes=2)
        return s, w, es

    best_score, best_w, best_es = trial(params)
    present = {EVENT_TYPES[i] for i in np.unique(shop.inter.kind)} - {"review"}
    options: list[tuple[str, float]] = [(name, v) for name, grid in PARAM_GRID.items() for v in grid]
    options += [(f"event:{t}", v) for t in sorted(present) for v in EVENT_WEIGHT_GRID]
    for name, value in options:
        if name.startswith("event:"):
            t = name.split(":", 1)[1]
            if params["event_weights"].get(t) == value:
                continue
            p: GraphParams = {**params, "event_weights": {**params["event_weights"], t: float(value)}}
        else:
            if params[name] == value:  # type: ignore[literal-required]
                continue
            p = {**params, name: value}  # type: ignore[misc]
        s, w, es = trial(p)
        if s > best_score + 1e-9:
            best_score, best_w, best_es, params = s, w, es, p
    return params, best_w, best_es
