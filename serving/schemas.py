"""Request and response models of the HTTP API (pydantic: BentoML validates
requests against them and answers 400 with the reason)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from portrait.features.tags import parse_tags

MAX_TEXTS = 64
MAX_TEXT_CHARS = 5_000
MAX_ITEMS = 100

UserId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
ItemId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
ReviewText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelVersions(BaseModel):
    """Which registered model versions (review-sentiment, rating-predictor) answered."""

    review_sentiment: str | None = None
    rating_predictor: str | None = None


class Sentiment(BaseModel):
    label: str
    probabilities: dict[str, float]
    model: str | None = Field(
        default=None, description="the model that answered: review-sentiment, or review-sentiment-zh for Chinese"
    )


class SentimentResponse(BaseModel):
    results: list[Sentiment]
    models: ModelVersions


class RatedItem(BaseModel):
    item_id: str
    rating: float = Field(description="predicted stars, 1-5")


class RatingResponse(BaseModel):
    user_id: str
    ratings: list[RatedItem]
    cold_start: bool
    stale_features: list[str] = Field(
        default_factory=list,
        description="feature views whose served values are older than the view's TTL (Feast serves them as PRESENT)",
    )
    models: ModelVersions


class Recommendation(BaseModel):
    item_id: str
    score: float
    predicted_rating: float | None
    affinity: float | None
    why: str


class RecommendResponse(BaseModel):
    user_id: str
    cold_start: bool
    items: list[Recommendation]
    stale_features: list[str] = Field(
        default_factory=list,
        description="feature views whose served values are older than the view's TTL (Feast serves them as PRESENT)",
    )
    models: ModelVersions


class ReviewResponse(BaseModel):
    user_id: str
    item_id: str
    review_id: int
    # None for a placeholder text (the platform's, not the shopper's): stored for its stars only
    sentiment: Sentiment | None
    placeholder: str | None = None  # why the text is not the shopper's (empty, platform default, template)
    online_profile_updated: bool
    models: ModelVersions


class Aspect(BaseModel):
    """An aspect the user wrote about and how they felt about it over their clauses."""

    aspect: str
    sentiment: str  # positive | negative | mixed


def parse_aspects(tags: str | None) -> list[Aspect]:
    """The feature's "aspect +, aspect -" string (portrait.features.tags) as aspects."""
    return [Aspect(aspect=aspect, sentiment=sentiment) for aspect, sentiment in parse_tags(tags)]


class Profile(BaseModel):
    user_id: str
    segment: str
    behavior: dict[str, float | int | None]
    sentiment_tendency: dict[str, float | None]
    sentiment_source: str | None
    sentiment_reviews: int | None = None  # reviews behind the text profile (its embedding and shares)
    interest_tags: list[str]  # the aspects with their sign, as the feature holds them ("string +")
    aspects: list[Aspect]  # the same, structured: what the user cares about and how they feel about it
    last_activity: str | None
    stale_features: list[str] = Field(
        default_factory=list,
        description="feature views whose served values are older than the view's TTL (Feast serves them as PRESENT)",
    )
    models: ModelVersions


class ReloadResponse(BaseModel):
    models: ModelVersions
    changed: list[str]
