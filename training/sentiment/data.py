"""The sentiment data: reviews with their rating-derived labels, split by time (or by text hash for the Chinese corpus)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from portrait.settings import get_settings
from portrait.store.database import REVIEW_ORDER
from portrait.text.encoder import review_text
from portrait.text.labels import SENTIMENT_LABELS, ratings_sentiment
from registry.models import SENTIMENT, SENTIMENT_ZH
from training.common import (
    SplitError,
    TimeSplit,
    run_tags,
    with_float_integers,
)
from training.sentiment.config import FineTuneConfig
from training.sentiment.metrics import LABEL_IDS


def load_reviews(engine: sa.Engine) -> pd.DataFrame:
    """Every review the shopper wrote, with its text, sentiment label and time (raw
    tables). Placeholder texts are left out: their stars say nothing about their words."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "SELECT review_id, event_timestamp, rating, summary, text, language FROM reviews r "
                    "WHERE placeholder IS NULL ORDER BY " + REVIEW_ORDER
                )
            )
            .mappings()
            .all()
        )
    df = pd.DataFrame(rows, columns=["review_id", "event_timestamp", "rating", "summary", "text", "language"])
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    df["input"] = [review_text(s, t) for s, t in zip(df["summary"], df["text"])]
    df["label"] = ratings_sentiment(df["rating"])
    return df


def chinese_parts(cfg: FineTuneConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test) of the Chinese data, marked binary: cfg.chinese training
    reviews sampled evenly over the categories, at most cfg.val_limit for validation, the
    whole fixed test split. Empty frames when cfg.chinese is 0."""
    if not cfg.chinese:
        empty = pd.DataFrame(columns=["input", "label", "binary"])
        return empty, empty, empty
    from training.sentiment.chinese import load_chinese

    zh = load_chinese(get_settings().resolved_data_dir()).assign(binary=True, language="zh")
    train = zh[zh["split"] == "train"]
    train = train.groupby("category").sample(frac=min(1.0, cfg.chinese / len(train)), random_state=cfg.seed)
    val = zh[zh["split"] == "val"]
    val = val.sample(min(cfg.val_limit, len(val)), random_state=cfg.seed)
    test = zh[zh["split"] == "test"]
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)


@dataclass
class SentimentData:
    """One training run's reviews, split by time, and what follows from them."""

    split: TimeSplit  # with its dates (resolved on the reviews when none were given)
    split_summary: str  # each part's count and dates, as the CLI prints them
    train: pd.DataFrame
    val: pd.DataFrame
    val_small: pd.DataFrame  # an evenly spaced subset (time order kept): validation stays cheap on CPU
    test: pd.DataFrame
    zh_train: pd.DataFrame  # the shared Chinese data beside an English shop's reviews (else empty)
    zh_val: pd.DataFrame
    zh_test: pd.DataFrame
    registered_name: str
    classes: list[str]
    chinese_shop: bool  # its baseline tokenizes with jieba
    baseline_name: str
    dataset: Any  # the MLflow dataset logged as each run's input
    counts: dict[str, int | str]
    tags: dict[str, str]

    @property
    def y_test(self) -> np.ndarray:
        return self.test["label"].map(LABEL_IDS).to_numpy()

    @property
    def val_select(self) -> pd.DataFrame:
        """The validation rows the candidates are compared on (evenly spaced, time order kept)."""
        return _evenly_spaced(self.val, SELECT_LIMIT)


SELECT_LIMIT = 5000  # validation reviews the candidates are compared on (all of them in most shops)


def _evenly_spaced(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    return frame.iloc[np.linspace(0, len(frame) - 1, min(limit, len(frame))).astype(int)]


def refuse_thin_classes(classes: list[str], val: pd.DataFrame, test: pd.DataFrame, split, minimum: int) -> None:
    """A validation or test part with fewer than `minimum` reviews of a class cannot
    choose or judge a model on that class: refused, saying which and how to fix it."""
    for name, part in (("validation", val), ("test", test)):
        counts = part["label"].value_counts()
        thin = {c: int(counts.get(c, 0)) for c in classes if counts.get(c, 0) < minimum}
        if thin:
            listed = ", ".join(f"{n} {c}" for c, n in thin.items())
            raise SplitError(
                f"the {name} part of {split.window()} holds only {listed} review(s) (at least {minimum} of each "
                "class are needed to choose and judge a model): give other --train-before/--test-from dates, "
                "or load more reviews"
            )


def sentiment_data(engine: sa.Engine, cfg: FineTuneConfig, split: TimeSplit) -> SentimentData:
    """The reviews of the run (the shop's, and the Chinese data where asked), split by time."""
    import mlflow

    reviews = load_reviews(engine)
    if cfg.language:
        reviews = reviews[reviews["language"].eq(cfg.language)].reset_index(drop=True)
    zh_train, zh_val, zh_test = chinese_parts(cfg)
    if reviews.empty and not len(zh_train):
        raise ValueError(f"no {cfg.language + ' ' if cfg.language else ''}reviews: run portrait ingest first")
    split = split.resolved(reviews["event_timestamp"]) if len(reviews) else split
    # a shop with no reviews of the language trains on the Chinese data's own fixed split alone
    parts = split.part(reviews["event_timestamp"]) if len(reviews) else pd.Series([], dtype=object)
    train, val, test = (reviews[parts == p].reset_index(drop=True) for p in ("train", "val", "test"))
    registered_name = SENTIMENT
    if cfg.language == "zh":  # the Chinese model: the shop's Chinese reviews and the Chinese data, one test set
        registered_name = SENTIMENT_ZH
        train, val, test = (
            pd.concat([a, b], ignore_index=True) for a, b in ((train, zh_train), (val, zh_val), (test, zh_test))
        )
        zh_train = zh_val = zh_test = zh_train.iloc[:0]
    for label, part in (("train", train), ("validation", val), ("test", test)):
        if part.empty:
            raise SplitError(f"the {label} period of {split.window()} holds no reviews")
    # A shop whose ratings have no middle (thumbs up/down, 0/1 labels mapped to 1 and 5 stars)
    # teaches no neutral class: its reviews are binary rows, never asked to be neutral, and the
    # model it gives answers negative or positive only (model_config classes).
    binary_shop = not train["label"].eq("neutral").any()
    if binary_shop:
        train, val, test = (part.assign(binary=True) for part in (train, val, test))
    classes = ["negative", "positive"] if binary_shop else list(SENTIMENT_LABELS)
    refuse_thin_classes(classes, val, test, split, cfg.min_class_examples)
    chinese_shop = bool(train["language"].eq("zh").mean() > 0.5)
    dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]  # lazily bound by mlflow.data
        with_float_integers(reviews.assign(part=parts)[["review_id", "event_timestamp", "input", "label", "part"]]),
        name="shop-reviews-sentiment",
        targets="label",
    )
    counts: dict[str, int | str] = {f"{n}_reviews": len(p) for n, p in (("train", train), ("val", val), ("test", test))}
    counts["sentiment_classes"] = ",".join(classes)  # ("classes" is the model config's, logged by MLflow)
    if len(zh_train):
        counts.update(chinese_train_reviews=len(zh_train), chinese_test_reviews=len(zh_test))
    return SentimentData(
        split=split,
        split_summary=split.describe(reviews["event_timestamp"]) if len(reviews) else split.window(),
        train=train,
        val=val,
        val_small=_evenly_spaced(val, cfg.val_limit),
        test=test,
        zh_train=zh_train,
        zh_val=zh_val,
        zh_test=zh_test,
        registered_name=registered_name,
        classes=classes,
        chinese_shop=chinese_shop,
        baseline_name="jieba-tfidf+logreg" if chinese_shop else "tfidf+logreg",
        dataset=dataset,
        counts=counts,
        tags=run_tags(split),
    )
