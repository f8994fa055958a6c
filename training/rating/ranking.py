"""Ranking on the test period: each user's new items, the candidate lists, the blend weights chosen on validation, NDCG@10 and Recall@10 against popularity."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from portrait.features.rating_inputs import RATING_SERVICE
from portrait.featurestore.repo import service_features
from training.common import (
    TimeSplit,
)
from training.rating.config import RatingConfig
from training.rating.data import as_of_features

if TYPE_CHECKING:  # the models-from-code file registers its model when imported
    from registry.rating_model import RankingWeights


RANKING_GRID: list[RankingWeights] = [
    {"affinity": a, "popularity": p, "rating": r}
    for a in (0.0, 0.5, 1.0, 2.0, 4.0)
    for p in (0.0, 0.1, 0.25, 0.5, 1.0)
    for r in (0.0, 0.5, 1.0)
    if a or p
]


def ndcg_recall_at_k(ranked: dict[str, list[str]], relevant: dict[str, set[str]], k: int) -> tuple[float, float]:
    """Mean NDCG@k and Recall@k over users with at least one relevant item."""
    ndcgs, recalls = [], []
    for user, items in relevant.items():
        top = ranked.get(user, [])[:k]
        gains = [1.0 if it in items else 0.0 for it in top]
        dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
        ideal = sum(1 / math.log2(r + 2) for r in range(min(k, len(items))))
        ndcgs.append(dcg / ideal)
        recalls.append(sum(gains) / len(items))
    return float(np.mean(ndcgs)), float(np.mean(recalls))


@dataclass
class RankingPeriod:
    """Who reviewed what in one period, and everything known at its start.
    Warm users (with a text profile) are ranked by the model, the rest get the
    most popular items, as serving does."""

    users: list[str]  # sampled users with at least one new item in the period
    relevant: dict[str, set[str]]  # items each reviewed in the period, seen ones excluded
    seen: dict[str, set[str]]
    popular: list[str]  # items by review count before the period
    items: list[str]
    warm: list[str]
    features: pd.DataFrame  # rating_v1 inputs for every (warm user, item), user-major
    affinity: np.ndarray  # warm users x items
    item_review_count: np.ndarray  # items
    allowed: np.ndarray  # warm users x items: not reviewed before

    def popularity(self, user: str, k: int) -> list[str]:
        s = self.seen.get(user, set())
        return [i for i in self.popular if i not in s][:k]


def _new_items(before: pd.DataFrame, during: pd.DataFrame, seen: dict, cfg: RatingConfig) -> dict[str, set]:
    """Each user's items of the period not seen before it (users with none left out;
    a seeded sample of cfg.ranking_users when there are more)."""
    relevant = {u: set(g) - seen.get(u, set()) for u, g in during.groupby("user_id")["item_id"]}
    relevant = {u: r for u, r in relevant.items() if r}
    users = sorted(relevant)
    if len(users) > cfg.ranking_users:
        users = sorted(np.random.default_rng(cfg.seed).choice(users, size=cfg.ranking_users, replace=False))
    return {u: relevant[u] for u in users}


def ranking_period(store, before: pd.DataFrame, during: pd.DataFrame, start, cfg: RatingConfig) -> RankingPeriod:
    """Features as of `start`, fetched per user and per item (two small
    point-in-time joins) and combined by portrait.features.rating_inputs, as serving
    combines the online ones: a join per (user, item) pair would carry every item
    embedding snapshot through PostgreSQL."""
    from portrait.features.rating_inputs import affinity, embedding_matrix, rating_inputs
    from portrait.featurestore.repo import PROFILE_SERVICE, RECOMMEND_SERVICE, service_refs

    cut = pd.Timestamp(start) - pd.Timedelta(seconds=1)
    seen = before.groupby("user_id")["item_id"].agg(set).to_dict()
    relevant = _new_items(before, during, seen, cfg)
    users = sorted(relevant)
    user_df = as_of_features(
        store, pd.DataFrame({"user_id": users, "event_timestamp": cut}), service_refs(store, PROFILE_SERVICE, "user_id")
    )
    user_df = user_df.drop(columns=["event_timestamp"]).drop_duplicates("user_id").set_index("user_id")
    items = sorted(set(before["item_id"]))
    item_df = as_of_features(
        store,
        pd.DataFrame({"item_id": items, "event_timestamp": cut}),
        service_refs(store, RECOMMEND_SERVICE, "item_id"),
    )
    item_df = item_df.drop_duplicates("item_id").set_index("item_id").reindex(items)
    item_vectors = embedding_matrix(list(item_df["item_embedding"]))
    warm = [
        u
        for u in users
        if u in user_df.index and user_df.at[u, "user_embedding"] is not None and len(user_df.at[u, "user_embedding"])
    ]
    user_vectors = embedding_matrix([user_df.at[u, "user_embedding"] for u in warm])
    if not warm:
        user_vectors = np.zeros((0, item_vectors.shape[1]), np.float32)
    period_affinity = affinity(user_vectors, item_vectors)
    n_items = len(items)
    features = rating_inputs(
        user_df.reindex(np.repeat(warm, n_items)).reset_index(drop=True),
        item_df.iloc[np.tile(np.arange(n_items), len(warm))].reset_index(drop=True),
        period_affinity.reshape(-1),
        pd.Timestamp(start).timestamp(),
        service_features(store, RATING_SERVICE),
    )
    index = {i: j for j, i in enumerate(items)}
    allowed = np.ones((len(warm), n_items), dtype=bool)
    for r, user in enumerate(warm):
        allowed[r, [index[i] for i in seen.get(user, ()) if i in index]] = False
    review_count = pd.to_numeric(item_df["item_review_count"], errors="coerce").to_numpy(float)
    return RankingPeriod(
        users,
        relevant,
        seen,
        before["item_id"].value_counts().index.tolist(),
        items,
        warm,
        features,
        period_affinity,
        review_count,
        allowed,
    )


def _row_ratings(ratings: np.ndarray, row: int, cand: np.ndarray) -> np.ndarray:
    return ratings[row, cand]


def ranked_lists(
    period: RankingPeriod, ratings: np.ndarray, weights: RankingWeights, cfg: RatingConfig
) -> dict[str, list[str]]:
    """Top-k per user exactly as /recommend ranks (registry.rating_model.rank_for_user;
    ratings: warm users x items)."""
    from registry.rating_model import rank_for_user

    ranked = {}
    for r, user in enumerate(period.warm):
        top, _, _ = rank_for_user(
            period.affinity[r],
            period.item_review_count,
            period.allowed[r],
            functools.partial(_row_ratings, ratings, r),
            weights,
            cfg.candidates,
            cfg.k,
        )
        ranked[user] = [period.items[j] for j in top]
    for user in period.users:
        ranked.setdefault(user, period.popularity(user, cfg.k))
    return ranked


def choose_ranking(period: RankingPeriod, ratings: np.ndarray, cfg: RatingConfig) -> tuple[RankingWeights, float]:
    """The ranking weights with the best NDCG@k on this (validation) period."""
    best, best_ndcg = RANKING_GRID[0], -1.0
    for weights in RANKING_GRID:
        ndcg, _ = ndcg_recall_at_k(ranked_lists(period, ratings, weights, cfg), period.relevant, cfg.k)
        if ndcg > best_ndcg + 1e-12:
            best, best_ndcg = weights, ndcg
    return best, best_ndcg


def ranking_metrics(
    period: RankingPeriod, ratings: np.ndarray, weights: RankingWeights, cfg: RatingConfig, prefix: str
) -> dict[str, float]:
    """NDCG@k and Recall@k of the model's ranking and of popularity on one period."""
    from registry.rating_model import DEFAULT_RANKING

    k = cfg.k
    ndcg, recall = ndcg_recall_at_k(ranked_lists(period, ratings, weights, cfg), period.relevant, k)
    pop = {u: period.popularity(u, k) for u in period.users}
    pop_ndcg, pop_recall = ndcg_recall_at_k(pop, period.relevant, k)
    by_rating, _ = ndcg_recall_at_k(ranked_lists(period, ratings, DEFAULT_RANKING, cfg), period.relevant, k)
    return {
        f"{prefix}_ndcg_at_{k}": ndcg,
        f"{prefix}_recall_at_{k}": recall,
        f"{prefix}_popularity_ndcg_at_{k}": pop_ndcg,
        f"{prefix}_popularity_recall_at_{k}": pop_recall,
        f"{prefix}_nearest_by_rating_ndcg_at_{k}": by_rating,
        f"{prefix}_ndcg_at_{k}_vs_popularity": ndcg / pop_ndcg if pop_ndcg else float("nan"),
        f"{prefix}_ranking_users": len(period.users),
        f"{prefix}_ranking_cold_users": len(period.users) - len(period.warm),
    }


def predicted_matrix(period: RankingPeriod, score) -> np.ndarray:
    return (
        np.asarray(score(period.features), dtype=float).reshape(len(period.warm), len(period.items))
        if period.warm
        else np.zeros((0, len(period.items)))
    )


def ranking_eval(
    store, frame: pd.DataFrame, split: TimeSplit, score_val, score_test, cfg: RatingConfig
) -> tuple[dict[str, float], RankingWeights]:
    """Top-k recommendation as serving does it. The ranking weights (affinity,
    popularity prior, predicted rating) are chosen on the validation period with
    the model trained before it (score_val); the test period, with the refit
    model (score_test), reports the result. Relevant items: those a user
    reviewed in the period. Baseline: the most popular items before it."""
    parts = frame["part"]
    val = ranking_period(store, frame[parts == "train"], frame[parts == "val"], split.train_before, cfg)
    val_ratings = predicted_matrix(val, score_val)
    weights, _ = choose_ranking(val, val_ratings, cfg)
    test = ranking_period(store, frame[parts != "test"], frame[parts == "test"], split.test_from, cfg)
    metrics = {
        **ranking_metrics(val, val_ratings, weights, cfg, "val"),
        **ranking_metrics(test, predicted_matrix(test, score_test), weights, cfg, "test"),
    }
    metrics.update({f"ranking_weight_{k}": float(weights[k]) for k in ("affinity", "popularity", "rating")})
    return metrics, weights
