"""How /recommend ranks (registry.rating_model) and how training chooses the
ranking weights on the validation period (training.rating)."""

import numpy as np
import pandas as pd
import pytest

from registry.rating_model import DEFAULT_RANKING, ranking_prior, ranking_score, top_candidates
from training.rating import RankingPeriod, RatingConfig, choose_ranking, ndcg_recall_at_k, ranked_lists

CFG = RatingConfig(k=3, candidates=5)
ITEMS = [f"i{j}" for j in range(20)]
USERS = [f"u{r}" for r in range(8)]


def _period(relevant_of, seen: dict[str, set[str]] | None = None) -> tuple[RankingPeriod, np.ndarray]:
    rng = np.random.default_rng(0)
    affinity = rng.uniform(0, 1, (len(USERS), len(ITEMS)))
    counts = np.arange(len(ITEMS), 0, -1).astype(float)  # i0 is the most reviewed
    seen = seen or {}
    allowed = np.array([[i not in seen.get(u, set()) for i in ITEMS] for u in USERS])
    relevant = {u: relevant_of(r, affinity, counts) for r, u in enumerate(USERS)}
    period = RankingPeriod(
        users=USERS,
        relevant=relevant,
        seen=seen,
        popular=list(ITEMS),
        items=ITEMS,
        warm=USERS,
        features=pd.DataFrame(),
        affinity=affinity,
        item_review_count=counts,
        allowed=allowed,
    )
    ratings = rng.uniform(1, 5, (len(USERS), len(ITEMS)))  # a rating model that knows nothing
    return period, ratings


def test_the_weights_follow_popularity_when_the_period_rewards_it():
    period, ratings = _period(lambda r, aff, counts: {"i0", "i1"})
    weights, ndcg = choose_ranking(period, ratings, CFG)
    assert ndcg == pytest.approx(1.0)
    assert weights["popularity"] > 0 and weights["rating"] == 0


def test_the_weights_follow_affinity_when_the_period_rewards_it():
    period, ratings = _period(lambda r, aff, counts: {ITEMS[int(np.argmax(aff[r]))]})
    weights, ndcg = choose_ranking(period, ratings, CFG)
    assert ndcg == pytest.approx(1.0)
    assert weights["affinity"] > 0 and weights["popularity"] == 0


def test_seen_items_are_never_recommended_and_cold_users_get_popular_items():
    period, ratings = _period(lambda r, aff, counts: {"i0"}, seen={"u0": {"i0", "i1"}})
    period.warm = USERS[:-1]  # the last user has no text profile
    ranked = ranked_lists(period, ratings[:-1], {"affinity": 0.0, "popularity": 1.0, "rating": 0.0}, CFG)
    assert ranked["u0"] == ["i2", "i3", "i4"]
    assert ranked[USERS[-1]] == ["i0", "i1", "i2"]
    ndcg, recall = ndcg_recall_at_k(ranked, period.relevant, CFG.k)
    assert recall == pytest.approx(7 / 8)  # everyone but u0, who has seen i0


def test_prior_and_score_combine_the_weighted_signals():
    weights = {"affinity": 2.0, "popularity": 0.5, "rating": 1.0}
    prior = ranking_prior(np.array([0.5, np.nan]), np.array([np.e - 1, np.nan]), weights)
    assert prior == pytest.approx([2.0 * 0.5 + 0.5 * 1.0, 0.0])  # missing values count as 0
    assert ranking_score(prior, np.array([4.0, 3.0]), weights) == pytest.approx([5.5, 3.0])
    assert top_candidates(np.array([0.1, 0.9, 0.5, 0.7]), np.array([True, False, True, True]), 2).tolist() == [3, 2]
    assert DEFAULT_RANKING["affinity"] > 0  # a model logged without weights still ranks by similarity


def test_rank_for_user_takes_the_best_prior_candidates_and_reranks_them_by_rating():
    from registry.rating_model import rank_for_user

    affinity = np.array([0.9, 0.8, 0.7, 0.1, np.nan])
    counts = np.zeros(5)
    allowed = np.array([True, False, True, True, True])
    asked = []

    def predict(cand):
        asked.append(list(cand))
        return np.array([1.0, 5.0])[: len(cand)]

    top, scores, ratings = rank_for_user(
        affinity, counts, allowed, predict, {"affinity": 1.0, "popularity": 0.0, "rating": 1.0}, candidates=2, k=1
    )
    assert asked == [[0, 2]]  # item 1 is not allowed; the two best priors are scored
    assert top.tolist() == [2] and ratings.tolist() == [5.0] and scores == pytest.approx([5.7])


def test_models_logged_before_the_candidate_count_rank_as_training_does_by_default():
    from registry.rating_model import DEFAULT_CANDIDATES
    from training.rating import RatingConfig

    assert RatingConfig().candidates == DEFAULT_CANDIDATES
