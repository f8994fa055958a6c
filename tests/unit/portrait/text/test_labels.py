"""portrait.text.labels: the one rating -> sentiment rule."""

import pandas as pd

from portrait.text.labels import SENTIMENT_LABELS, is_low_rating, rating_sentiment, ratings_sentiment


def test_stars_map_onto_the_three_classes():
    assert [rating_sentiment(r) for r in (1, 2, 3, 4, 5)] == ["negative", "negative", "neutral", "positive", "positive"]
    assert ratings_sentiment(pd.Series([1, 3, 5])).tolist() == list(SENTIMENT_LABELS)
    assert is_low_rating(pd.Series([2, 3])).tolist() == [1.0, 0.0]
