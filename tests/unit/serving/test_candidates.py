"""/recommend's candidate index (serving.candidates) finds the items the exact
ranking pass finds (registry.rating_model), for any weights."""

import numpy as np
import pytest

from portrait.features.rating_inputs import affinity, normalize
from registry.rating_model import ranking_prior, top_candidates
from serving.candidates import CandidateIndex


def catalog(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = normalize(rng.normal(size=(n, dim)).astype(np.float32))
    emb[rng.random(n) < 0.1] = 0  # items without an embedding
    counts = rng.integers(1, 500, n).astype(float)
    counts[rng.random(n) < 0.05] = np.nan  # items without stats
    return emb, counts


@pytest.mark.parametrize(
    "weights",
    [
        {"affinity": 1.0, "popularity": 0.0},
        {"affinity": 1.0, "popularity": 0.25},
        {"affinity": 0.5, "popularity": 1.0},
        {"affinity": 0.0, "popularity": 0.5},
        {"affinity": -1.0, "popularity": 0.1},
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_exact_index_finds_the_exact_passs_candidates(weights, seed):
    emb, counts = catalog(3000, 16, seed)
    index = CandidateIndex(emb, counts)
    assert index.exact
    rng = np.random.default_rng(seed)
    user = normalize(rng.normal(size=(1, 16)).astype(np.float32))
    excluded = rng.choice(3000, 40, replace=False)
    allowed = np.ones(3000, dtype=bool)
    allowed[excluded] = False
    prior = ranking_prior(affinity(user, emb)[0], counts, weights)
    want = top_candidates(prior, allowed, 100)
    got = index.top(user[0], weights, excluded, 100)
    assert not set(got) & set(excluded)
    # equal priors may come in another order at the cut: the priors found are the same
    np.testing.assert_allclose(np.sort(prior[got]), np.sort(prior[want]), rtol=1e-5, atol=1e-6)
    assert len(set(got) & set(want)) >= 98


def test_affinity_and_vectors_come_from_the_index():
    emb, counts = catalog(500, 8, 3)
    index = CandidateIndex(emb, counts)
    rows = np.arange(500)
    np.testing.assert_allclose(index.vectors(rows), emb, atol=1e-6)
    user = normalize(np.ones((1, 8), dtype=np.float32))
    want = affinity(user, emb)[0]
    got = index.affinity(user[0], rows)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], atol=1e-6)
    assert np.isnan(index.affinity(np.zeros(8, dtype=np.float32), rows)).all()  # a user without a profile


def test_without_a_user_vector_the_candidates_are_the_most_reviewed():
    emb, counts = catalog(200, 8, 4)
    index = CandidateIndex(emb, counts)
    got = index.top(None, {"affinity": 1.0, "popularity": 0.5}, np.array([], dtype=np.int64), 10)
    assert np.array_equal(np.sort(np.nan_to_num(counts)[got])[::-1], np.sort(np.nan_to_num(counts))[::-1][:10])
    # no weight at all: every prior is 0 and the first allowed rows come, as in the exact pass
    assert index.top(None, {"affinity": 0.0, "popularity": 0.0}, np.array([0, 2]), 3).tolist() == [1, 3, 4]


def test_an_empty_catalog_has_no_candidates():
    index = CandidateIndex(np.zeros((0, 8), dtype=np.float32), np.zeros(0))
    assert index.top(np.ones(8), {"affinity": 1.0, "popularity": 0.1}, np.array([], dtype=np.int64), 10).size == 0
