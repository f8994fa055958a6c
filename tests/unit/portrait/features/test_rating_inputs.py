"""portrait.features.rating_inputs: the one builder of the rating model's inputs."""

import numpy as np
import pandas as pd
import pytest

from portrait.features.rating_inputs import affinity, embedding_matrix, rating_inputs


def test_affinity_matches_the_on_demand_views_cosine_and_is_nan_without_a_vector():
    users = embedding_matrix([[3.0, 4.0], None])
    items = embedding_matrix([[1.0, 0.0], [0.0, 0.0], [6.0, 8.0]])
    got = affinity(users, items)
    np.testing.assert_allclose(got[0, [0, 2]], [0.6, 1.0], rtol=1e-6)
    assert np.isnan(got[0, 1]) and np.isnan(got[1]).all()


def test_inputs_follow_the_service_order_and_compute_the_idle_days():
    users = pd.DataFrame({"rating_mean": [4.0, None], "last_activity_unix": [0, 86400]})
    items = pd.DataFrame({"item_review_count": [3, 5]})
    features = ["item_review_count", "days_since_last_activity", "rating_mean", "affinity"]
    frame = rating_inputs(users, items, np.array([0.5, np.nan]), 86400 * 3, features)
    assert list(frame.columns) == features
    assert frame["days_since_last_activity"].tolist() == [3.0, 2.0]
    assert np.isnan(frame.loc[1, "rating_mean"]) and frame.loc[0, "affinity"] == 0.5


def test_a_feature_nobody_supplies_and_misaligned_pairs_are_errors():
    users, items = pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [2.0]})
    with pytest.raises(KeyError, match="'c'"):
        rating_inputs(users, items, np.array([0.1]), 0, ["a", "c"])
    with pytest.raises(ValueError, match="misaligned"):
        rating_inputs(users, pd.DataFrame({"b": [1.0, 2.0]}), np.array([0.1]), 0, ["a"])
