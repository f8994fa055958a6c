"""Review sentiment: fine-tune the encoder as a 3-class classifier (labels from
the star rating, portrait.text.labels) and, on the same time split, a TF-IDF +
logistic-regression baseline and the blend of the two. Each is its own MLflow run;
the best on validation is registered as `review-sentiment` (training.sentiment.candidates).
Macro-F1 is the headline metric."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from portrait.text.encoder import encoder_prefix
from portrait.text.labels import SENTIMENT_LABELS
from training.common import (
    TimeSplit,
    device,
    environment_params,
)
from training.sentiment.baselines import baseline_run
from training.sentiment.behaviour import behaviour_report
from training.sentiment.candidates import BASELINE, BLEND, FINE_TUNED, Candidate, FineTunedRun, register_best
from training.sentiment.config import FineTuneConfig
from training.sentiment.data import SentimentData, sentiment_data
from training.sentiment.finetune import FineTuneResult, fine_tune, fitted_length, predict_proba, token_ids
from training.sentiment.metrics import (
    LABEL_IDS,
    bilingual_metrics,
    binary_labels,
    binary_metrics,
    evaluate_and_plot,
    log_drift_reference,
)

log = logging.getLogger(__name__)


def _proba(result: FineTuneResult, texts: list[str], cfg: FineTuneConfig) -> np.ndarray:
    """Class probabilities of the fine-tuned model, inputs prefixed as in training."""
    ids = token_ids(result.tokenizer, encoder_prefix(cfg.model_path()), pd.DataFrame({"input": texts}), cfg.length)
    return predict_proba(result.model, ids, result.tokenizer.pad_token_id, device(), precision=result.precision)


def _labels_and_positive(result: FineTuneResult, texts: list[str], cfg: FineTuneConfig) -> tuple[list[str], np.ndarray]:
    """The fine-tuned model as training.behaviour's predict."""
    proba = _proba(result, texts, cfg)
    return [SENTIMENT_LABELS[i] for i in proba.argmax(1)], proba[:, LABEL_IDS["positive"]]


@dataclass
class SentimentOutcome:
    """What a sentiment run gives the CLI: the registered version, the candidates beside
    it (typed), and everything logged (`metrics`: the fine-tuned model's)."""

    name: str  # the registered model: review-sentiment, or review-sentiment-zh
    version: int
    winner: Candidate
    candidates: list[Candidate]
    baseline: str  # its name: tfidf+logreg, or jieba-tfidf+logreg for a mostly Chinese shop
    split_summary: str
    examples_per_s: float
    stopped_by: str
    max_length: int  # tokens per review, given or fitted to the training texts
    result: FineTuneResult
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]

    @property
    def fine_tuned(self) -> Candidate:
        return next(c for c in self.candidates if c.kind == FINE_TUNED)

    @property
    def baseline_candidate(self) -> Candidate:
        return next(c for c in self.candidates if c.kind == BASELINE)

    @property
    def blend(self) -> Candidate:
        return next(c for c in self.candidates if c.kind == BLEND)

    @property
    def run_id(self) -> str:
        return self.winner.run_id


def _fine_tuned_metrics(
    data: SentimentData,
    result: FineTuneResult,
    cfg: FineTuneConfig,
    proba: np.ndarray,
    baseline_metrics: dict[str, float],
) -> dict[str, float]:
    """Test metrics of the fine-tuned model (`proba`: on data.test; and on the Chinese
    test set), each beside the baseline's, and the behavioural checks."""
    import mlflow

    log_drift_reference(data.test, proba)
    metrics = evaluate_and_plot("fine-tuned", proba, data.y_test, binary_labels(data.test))
    metrics["test_macro_f1_gain_over_baseline"] = metrics["test_macro_f1"] - baseline_metrics["test_macro_f1"]
    if len(data.zh_test):
        zh_metrics = binary_metrics(
            data.zh_test["label"].map(LABEL_IDS).to_numpy(),
            _proba(result, list(data.zh_test["input"]), cfg),
            "zh_test",
        )
        zh_metrics["zh_test_macro_f1_gain_over_baseline"] = (
            zh_metrics["zh_test_macro_f1"] - baseline_metrics["zh_test_macro_f1"]
        )
        metrics.update(zh_metrics)
    behaviour = behaviour_report(lambda texts: _labels_and_positive(result, texts, cfg))
    metrics.update(behaviour.metrics())
    mlflow.log_text("\n".join(behaviour.failures) or "all behavioural checks passed", "behaviour_failures.txt")
    return metrics


def fine_tune_run(
    data: SentimentData, cfg: FineTuneConfig, baseline_metrics: dict[str, float], progress: bool
) -> FineTunedRun:
    """The fine-tune as its own MLflow run: learning curves, test metrics beside the
    baseline's, and the selection metrics on the candidates' common validation rows."""
    import mlflow

    from training import plots

    with mlflow.start_run(run_name="fine-tune-sentiment", tags={**data.tags, "model_kind": "fine-tuned"}) as run:
        mlflow.log_input(data.dataset, context="training")
        mlflow.log_params({**asdict(cfg), "model": cfg.model_path(), **data.counts, **environment_params()})
        result = fine_tune(
            pd.concat([data.train, data.zh_train], ignore_index=True),
            pd.concat([data.val_small, data.zh_val], ignore_index=True),
            cfg,
            progress=progress,
            on_eval=lambda row: mlflow.log_metrics(
                {k: v for k, v in row.items() if k not in ("step",) and v is not None}, step=row["step"]
            ),
        )
        mlflow.log_figure(
            plots.learning_curves(result.history, ["train_loss", "val_loss", "val_macro_f1"], "fine-tune sentiment"),
            "learning_curves.png",
        )
        test_proba = _proba(result, list(data.test["input"]), cfg)
        metrics = _fine_tuned_metrics(data, result, cfg, test_proba, baseline_metrics)
        mlflow.log_param("precision_used", result.precision)
        mlflow.set_tags({"stopped_by": result.stopped_by, "truncated": str(result.truncated).lower()})
        run_metrics = {
            "train_examples_per_s": result.examples_per_s,
            "best_step": result.best_step,
            "steps": result.steps,
        }
        metrics.update(run_metrics)
        val_proba = _proba(result, list(data.val_select["input"]), cfg)
        select = bilingual_metrics(
            data.val_select["label"].map(LABEL_IDS).to_numpy(), val_proba, binary_labels(data.val_select), "select_val"
        )
        # logged whether or not it wins: every candidate's test figure is in its run
        mlflow.log_metrics({**select, **metrics})
    return FineTunedRun(run.info.run_id, metrics, select, result, val_proba, test_proba)


def run_sentiment_training(
    engine: sa.Engine, cfg: FineTuneConfig, split: TimeSplit | None = None, progress: bool = True
) -> SentimentOutcome:
    """The candidates (TF-IDF + LR baseline, fine-tuned encoder, their blend) on the same
    time split, each its own MLflow run (the tracking URI must be configured); the best
    on validation is registered (training.sentiment.candidates)."""
    data = sentiment_data(engine, cfg, split or TimeSplit())
    cfg = fitted_length(cfg, [*data.train["input"], *data.zh_train["input"]])
    baseline = baseline_run(data)
    fine_tuned = fine_tune_run(data, cfg, baseline.test_metrics, progress)
    version, winner, candidates = register_best(data, cfg, baseline, fine_tuned)
    metrics, result = fine_tuned.metrics, fine_tuned.result
    return SentimentOutcome(
        name=data.registered_name,
        version=version,
        winner=winner,
        candidates=candidates,
        baseline=data.baseline_name,
        split_summary=data.split_summary,
        examples_per_s=result.examples_per_s,
        stopped_by=result.stopped_by,
        max_length=cfg.length,
        result=result,
        metrics=metrics,
        baseline_metrics=baseline.test_metrics,
    )
