"""The rating data: label rows (user, item, review time, stars) and Feast's point-in-time join of rating_v1 on them, split by time."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from portrait.features.rating_inputs import RATING_SERVICE
from portrait.featurestore.repo import service_features
from portrait.store.database import REVIEW_ORDER
from training.common import (
    SplitError,
    TimeSplit,
    run_tags,
    with_float_integers,
)

FEATURE_SERVICE = RATING_SERVICE


NON_FEATURES = {
    "label_order",
    "user_id",
    "item_id",
    "event_timestamp",
    "request_unix",
    "rating",
    "review_id",
    "part",
    "sentiment_source",
    "interest_tags",
    "last_activity_unix",
    "last_purchase_unix",
}


def label_rows(engine: sa.Engine) -> pd.DataFrame:
    """One row per review: who, what, when, and the rating to learn. The feature
    time is one second before the review, so the review itself is never its own
    feature (its snapshot has the same timestamp)."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "SELECT review_id, user_id, item_id, event_timestamp, rating FROM reviews r ORDER BY "
                    + REVIEW_ORDER
                )
            )
            .mappings()
            .all()
        )
    df = pd.DataFrame(rows, columns=["review_id", "user_id", "item_id", "event_timestamp", "rating"])
    ts = pd.to_datetime(df["event_timestamp"], utc=True)
    df["request_unix"] = (ts.astype("int64") // 10**9).astype("int64")
    df["event_timestamp"] = ts - pd.Timedelta(seconds=1)
    return df


def training_frame(store, labels: pd.DataFrame) -> pd.DataFrame:
    """Feast's point-in-time join of rating_v1 onto the label rows."""
    from portrait.featurestore.repo import historical_features

    entity_df = labels[["user_id", "item_id", "event_timestamp", "request_unix", "review_id", "rating"]].assign(
        label_order=np.arange(len(labels))
    )
    df = historical_features(store, entity_df, store.get_feature_service(FEATURE_SERVICE), progress=True)
    # back in the labels' order (portrait.store.database.REVIEW_ORDER): Feast returns its own
    return df.sort_values("label_order").drop(columns="label_order").reset_index(drop=True)


def feature_columns(frame: pd.DataFrame, declared: list[str] | None = None) -> list[str]:
    return [
        c
        for c in (declared or frame.columns)
        if c in frame and c not in NON_FEATURES and pd.api.types.is_numeric_dtype(frame[c])
    ]


def as_of_features(store, entities: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    from portrait.featurestore.repo import historical_features

    return historical_features(store, entities, features)


@dataclass
class RatingData:
    """The rating training set (Feast's point-in-time join), split by time."""

    split: TimeSplit  # with its dates (resolved on the reviews when none were given)
    split_summary: str  # each part's count and dates, as the CLI prints them
    frame: pd.DataFrame
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    features: list[str]
    tags: dict[str, str]
    counts: dict[str, int]
    dataset: Any  # the MLflow dataset logged as each run's input
    join_seconds: float

    @property
    def y_test(self) -> np.ndarray:
        return self.test["rating"].to_numpy().astype(float)

    @functools.cached_property
    def fit_frame(self) -> pd.DataFrame:
        """Train + validation: what the baselines and the final MLP learn from."""
        return pd.concat([self.train, self.val], ignore_index=True)


def rating_data(engine: sa.Engine, store, split: TimeSplit) -> RatingData:
    import mlflow

    labels = label_rows(engine)
    if labels.empty:
        raise ValueError("no reviews: run portrait ingest and portrait features build first")
    start = time.perf_counter()
    frame = training_frame(store, labels)
    join_seconds = time.perf_counter() - start
    split = split.resolved(labels["event_timestamp"])
    frame["part"] = split.part(frame["event_timestamp"] + pd.Timedelta(seconds=1))
    train, val, test = (frame[frame["part"] == p].reset_index(drop=True) for p in ("train", "val", "test"))
    for label, part in (("train", train), ("validation", val), ("test", test)):
        if part.empty:
            raise SplitError(f"the {label} period of {split.window()} holds no reviews")
    dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]  # lazily bound by mlflow.data
        with_float_integers(frame.drop(columns=["user_id", "item_id"])), name="rating_v1-training-set", targets="rating"
    )
    return RatingData(
        split=split,
        split_summary=split.describe(labels["event_timestamp"]),
        frame=frame,
        train=train,
        val=val,
        test=test,
        features=feature_columns(frame, service_features(store, FEATURE_SERVICE)),
        tags=run_tags(split, FEATURE_SERVICE),
        counts={f"{n}_reviews": len(p) for n, p in (("train", train), ("val", val), ("test", test))},
        dataset=dataset,
        join_seconds=join_seconds,
    )
