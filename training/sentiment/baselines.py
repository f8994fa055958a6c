"""The TF-IDF + logistic-regression baseline (jieba words for Chinese), trained and logged as its own MLflow run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portrait.text.labels import SENTIMENT_LABELS
from training.common import (
    pinned_requirements,
    word_tfidf,
)
from training.sentiment.data import SentimentData
from training.sentiment.metrics import (
    LABEL_IDS,
    bilingual_metrics,
    binary_labels,
    binary_metrics,
    evaluate_and_plot,
    log_drift_reference,
)


def train_baseline(train: pd.DataFrame, chinese: bool = False):
    """TF-IDF (words and bigrams) + class-weighted logistic regression; words from
    jieba for Chinese text (which has no spaces to split at)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        word_tfidf(chinese, max_features=100_000),
        LogisticRegression(class_weight="balanced", max_iter=2000, C=4.0),
    )
    start = time.perf_counter()
    pipeline.fit(train["input"], train["label"].map(LABEL_IDS))
    fit_seconds = time.perf_counter() - start
    return pipeline, fit_seconds


def baseline_proba(pipeline, texts) -> np.ndarray:
    """A scikit-learn classifier's probabilities as SENTIMENT_LABELS columns (a class
    it never saw, e.g. neutral in positive/negative data, gets 0)."""
    proba = np.zeros((len(texts), len(SENTIMENT_LABELS)))
    for column, label in enumerate(pipeline.classes_):
        proba[:, label if isinstance(label, (int, np.integer)) else LABEL_IDS[label]] = pipeline.predict_proba(texts)[
            :, column
        ]
    return proba


@dataclass
class BaselineCandidate:
    """The fitted baseline, a candidate for the registry in its own right."""

    run_id: str
    pipeline: Any
    val_metrics: dict[str, float]  # on the same validation rows as the fine-tuned model's
    test_metrics: dict[str, float]
    val_proba: np.ndarray  # on those validation rows and on test (the blend reuses them)
    test_proba: np.ndarray


def baseline_run(data: SentimentData) -> BaselineCandidate:
    """The TF-IDF + LR baseline (jieba-tokenized for a Chinese shop) as its own MLflow
    run on the same split, its validation and test metrics logged."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    chinese_shop, train, val, test = data.chinese_shop, data.train, data.val_select, data.test
    with mlflow.start_run(
        run_name=data.baseline_name.replace("+", "-") + "-baseline", tags={**data.tags, "model_kind": "baseline"}
    ) as base_run:
        mlflow.log_input(data.dataset, context="training")
        pipeline, fit_seconds = train_baseline(train, chinese=chinese_shop)
        mlflow.log_params(
            {
                "model": f"{'jieba ' if chinese_shop else ''}tfidf(1-2gram)+logreg(balanced)",
                **data.counts,
                "fit_seconds": round(fit_seconds, 2),
            }
        )
        val_proba = baseline_proba(pipeline, val["input"])
        val_metrics = bilingual_metrics(val["label"].map(LABEL_IDS).to_numpy(), val_proba, binary_labels(val), "val")
        val_metrics = {f"select_{k}": v for k, v in val_metrics.items()}  # the candidates' common ground
        test_proba = baseline_proba(pipeline, test["input"])
        log_drift_reference(test, test_proba)
        baseline_metrics = evaluate_and_plot(data.baseline_name, test_proba, data.y_test, binary_labels(test))
        baseline_info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            # declared, not inferred: review text in, class id (0..2, SENTIMENT_LABELS order) out
            signature=ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema([ColSpec("long")])),
            pip_requirements=pinned_requirements(
                ["scikit-learn", "cloudpickle", "numpy", "scipy", *(["jieba"] if chinese_shop else [])]
            ),
            # its tokenizer is Portrait's jieba segmentation (loading it needs portrait installed)
            skops_trusted_types=["portrait.text.language.jieba_words"] if chinese_shop else None,
        )
        if len(data.zh_train):  # the Chinese baseline: jieba TF-IDF + LR on the same Chinese training rows
            from training.sentiment.chinese import train_jieba_baseline

            zh_pipeline = train_jieba_baseline(data.zh_train)
            zh_proba = baseline_proba(zh_pipeline, data.zh_test["input"])
            baseline_metrics.update(
                binary_metrics(data.zh_test["label"].map(LABEL_IDS).to_numpy(), zh_proba, "zh_test")
            )
        # after the model, linked to it (see run_rating_training: no duplicate inserts)
        mlflow.log_metrics({**val_metrics, **baseline_metrics}, model_id=baseline_info.model_id)
    return BaselineCandidate(base_run.info.run_id, pipeline, val_metrics, baseline_metrics, val_proba, test_proba)
