"""The untrained online bias (training.rating.baselines): its shrinkage chosen on
validation, and the paired-bootstrap RMSE difference the rating model reports."""

import numpy as np
import pandas as pd
import pytest

from training.rating.baselines import choose_shrinkage, online_bias, rmse_difference


def frame(n: int, seed: int, noise: float) -> pd.DataFrame:
    """Reviews whose rating is the user's true mean: a user's observed mean (over
    review_count_total earlier reviews) is that plus noise shrinking with the count."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(1.5, 4.8, n)
    count = rng.integers(1, 6, n).astype(float)
    return pd.DataFrame(
        {
            "rating": np.clip(np.round(true), 1, 5),
            "rating_mean": true + rng.normal(0, noise, n) / np.sqrt(count),
            "review_count_total": count,
            "item_rating_mean": np.full(n, np.nan),  # no item history: the item part is the prior
            "item_review_count": np.zeros(n),
        }
    )


def test_the_shrinkage_follows_how_noisy_the_means_are():
    quiet = choose_shrinkage(frame(4000, 0, 0.05), frame(4000, 1, 0.05))
    noisy = choose_shrinkage(frame(4000, 0, 3.0), frame(4000, 1, 3.0))
    assert quiet < noisy
    pred = online_bias(frame(10, 2, 0.1), 3.0, quiet)
    assert ((pred >= 1) & (pred <= 5)).all()


def test_the_rmse_difference_is_paired_over_users():
    rng = np.random.default_rng(3)
    y = rng.integers(1, 6, 900).astype(float)
    users = np.repeat(np.arange(300), 3)
    good, bad = y + rng.normal(0, 0.5, 900), y + rng.normal(0, 1.0, 900)
    d, low, high = rmse_difference(y, good, bad, users)
    assert low < d < high < 0
    assert rmse_difference(y, good, good, users) == pytest.approx((0.0, 0.0, 0.0))
