"""Labels and the rules that make them, in one place: the sentiment classes and
how a star rating maps onto them (training labels, text profiles without a
sentiment model, POST /reviews, the report)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SENTIMENT_LABELS = ("negative", "neutral", "positive")
NEGATIVE_AT_MOST = 2  # stars: 1-2 negative
POSITIVE_AT_LEAST = 4  # stars: 4-5 positive; 3 is neutral


def rating_sentiment(rating: int | float) -> str:
    """The sentiment class of one star rating."""
    if rating <= NEGATIVE_AT_MOST:
        return "negative"
    return "positive" if rating >= POSITIVE_AT_LEAST else "neutral"


def ratings_sentiment(ratings: pd.Series) -> pd.Series:
    """rating_sentiment for a column of ratings."""
    return ratings.map(rating_sentiment).astype(str)


def is_low_rating(ratings: pd.Series) -> pd.Series:
    """Negative ratings as 1.0 / 0.0 (the low_rating_share feature)."""
    return (ratings <= NEGATIVE_AT_MOST).astype(float)
