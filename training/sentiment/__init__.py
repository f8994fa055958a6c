"""Review sentiment: the encoder fine-tuned as a 3-class classifier (labels from the star
rating) beside a TF-IDF + logistic-regression baseline on the same split, each its own MLflow
run. config (budget), data (reviews and split), baselines, finetune, metrics, train (the run).
What the CLI and the other stages use is named here."""

from training.sentiment.config import FineTuneConfig
from training.sentiment.finetune import fine_tune, predict_proba
from training.sentiment.metrics import LABEL_IDS, classification_metrics
from training.sentiment.train import SentimentOutcome, run_sentiment_training

__all__ = [
    "LABEL_IDS",
    "FineTuneConfig",
    "SentimentOutcome",
    "classification_metrics",
    "fine_tune",
    "predict_proba",
    "run_sentiment_training",
]
