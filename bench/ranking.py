"""How far above popularity can a recommender get on this data? NDCG@10 of
classic collaborative filters (item-kNN, EASE, RP3beta) and time-decayed
popularity against the most-popular baseline, side by side,
on the same periods and relevance as `portrait train rating` (relevant: items a
user reviewed in the period and had not reviewed before; train < 2013-07-01 <=
validation < 2014-01-01 <= test). Weights are chosen on validation, reported on
test. Reads the reviews table only; seconds.

    .venv/bin/python bench/ranking.py
"""

from __future__ import annotations

import common  # bench/common.py (bench/ is on sys.path when a script runs)
import numpy as np
import pandas as pd
import sqlalchemy as sa

from portrait.settings import get_settings
from training.common import TimeSplit
from training.rating import ndcg_recall_at_k

K = 10
EASE_LAMBDA = 200.0
BLEND = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 3.0)
HALF_LIVES = (30, 60, 90, 180, 365, 730)  # days, for decayed popularity
RP3_BETA = (0.3, 0.5, 0.7)


def period_data(reviews: pd.DataFrame, start, end) -> dict:
    before = reviews[reviews.t < start]
    during = reviews[(reviews.t >= start) & (reviews.t < end)] if end is not None else reviews[reviews.t >= start]
    seen = before.groupby("user_id")["item_id"].agg(set).to_dict()
    relevant = {u: set(g) - seen.get(u, set()) for u, g in during.groupby("user_id")["item_id"]}
    relevant = {u: r for u, r in relevant.items() if r}
    items = sorted(set(before["item_id"]))
    index = {i: j for j, i in enumerate(items)}
    users = sorted(set(before["user_id"]))
    row = {u: r for r, u in enumerate(users)}
    x = np.zeros((len(users), len(items)))
    x[[row[u] for u in before.user_id], [index[i] for i in before.item_id]] = 1.0
    recent = before[before.t >= pd.Timestamp(start) - pd.Timedelta(days=90)]
    age_days = (pd.Timestamp(start) - before.t).dt.days.to_numpy()
    return {
        "relevant": relevant,
        "seen": seen,
        "items": items,
        "index": index,
        "row": row,
        "x": x,
        "count": x.sum(0),
        "recent": recent["item_id"].value_counts().reindex(items).fillna(0).to_numpy(),
        "item_of_review": np.array([index[i] for i in before.item_id]),
        "age_days": age_days,
    }


def ndcg_of(d: dict, score_of) -> float:
    ranked = {}
    for user in d["relevant"]:
        s = np.array(score_of(user), dtype=float)
        s[[d["index"][i] for i in d["seen"].get(user, ()) if i in d["index"]]] = -np.inf
        ranked[user] = [d["items"][j] for j in np.argsort(-s, kind="stable")[:K]]
    return ndcg_recall_at_k(ranked, d["relevant"], K)[0]


def decayed_popularity(d: dict, half_life: float) -> np.ndarray:
    """Each earlier review counts 0.5 ** (its age / half_life) for its item."""
    return np.bincount(d["item_of_review"], weights=0.5 ** (d["age_days"] / half_life), minlength=len(d["items"]))


def rp3beta(x: np.ndarray, count: np.ndarray, beta: float) -> np.ndarray:
    """Item-item transition probabilities of a two-step random walk item -> user -> item,
    with the target item's popularity discounted by count ** beta (Paudel et al. 2017)."""
    p_ui = x / np.maximum(x.sum(1, keepdims=True), 1)
    p_iu = x.T / np.maximum(count[:, None], 1)
    w = (p_iu @ p_ui) / np.maximum(count, 1)[None, :] ** beta
    np.fill_diagonal(w, 0)
    return w


def recommenders(d: dict) -> dict:
    """name -> (grid of a parameter chosen on validation, parameter -> user -> item scores)."""
    x, count = d["x"], d["count"]
    zero = np.zeros(len(d["items"]))
    history = lambda u: x[d["row"][u]] if u in d["row"] else zero
    co = x.T @ x
    np.fill_diagonal(co, 0)
    knn = co / np.sqrt(np.outer(count, count) + 1e-9)
    p = np.linalg.inv(x.T @ x + EASE_LAMBDA * np.eye(len(count)))
    ease = -p / np.diag(p)
    np.fill_diagonal(ease, 0)
    pop = np.log1p(count) / max(np.log1p(count).max(), 1e-9)
    rp3 = {beta: rp3beta(x, count, beta) for beta in RP3_BETA}
    unit = lambda s: s / max(s.max(), 1e-12)
    blends = [(beta, w) for beta in RP3_BETA for w in BLEND]
    return {
        "popularity (all time)": ((0,), lambda w: lambda u: count),
        "popularity (last 90 days)": ((0,), lambda w: lambda u: d["recent"] + 1e-3 * count),
        "popularity (decayed)": (HALF_LIVES, lambda h: lambda u: decayed_popularity(d, h) + 1e-3 * count),
        "item-kNN (cosine)": (BLEND, lambda w: lambda u: unit(history(u) @ knn) + w * pop),
        f"EASE (lambda {EASE_LAMBDA:g})": (BLEND, lambda w: lambda u: unit(history(u) @ ease) + w * pop),
        "RP3beta (beta, blend)": (blends, lambda bw: lambda u: unit(history(u) @ rp3[bw[0]]) + bw[1] * pop),
    }


def main() -> None:
    engine = common.engine(get_settings())
    with engine.connect() as conn:
        reviews = pd.read_sql(sa.text("SELECT user_id, item_id, event_timestamp AS t FROM reviews"), conn)
    reviews["t"] = pd.to_datetime(reviews["t"], utc=True)
    split = TimeSplit().resolved(reviews["t"])  # the default split, as `portrait train rating` makes it
    val = period_data(reviews, pd.Timestamp(split.train_before), pd.Timestamp(split.test_from))
    test = period_data(reviews, pd.Timestamp(split.test_from), None)
    val_recs, test_recs = recommenders(val), recommenders(test)
    base_val = ndcg_of(val, val_recs["popularity (all time)"][1](0))
    base_test = ndcg_of(test, test_recs["popularity (all time)"][1](0))
    print(
        f"NDCG@{K}, {len(val['relevant'])} validation / {len(test['relevant'])} test users; "
        f"ratio against popularity (all time) = {base_val:.4f} / {base_test:.4f}"
    )
    print(f"  {'recommender':<30}{'chosen on validation':>22}{'validation':>12}{'test':>8}")
    for name, (grid, make) in val_recs.items():
        w = max(grid, key=lambda g: ndcg_of(val, make(g)))
        v, t = ndcg_of(val, make(w)), ndcg_of(test, test_recs[name][1](w))
        print(f"  {name:<30}{str(w):>22}{v / base_val:>11.2f}x{t / base_test:>7.2f}x")


if __name__ == "__main__":
    with common.recorded("ranking"):
        main()
