"""Sentiment metrics: 3-class macro-F1 and per-class scores, and the binary view for positive/negative shops."""

from __future__ import annotations

import numpy as np
import pandas as pd

from portrait.text.labels import SENTIMENT_LABELS


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, prefix: str) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    out = {
        f"{prefix}_macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=range(3), zero_division=0)),
        f"{prefix}_accuracy": float(accuracy_score(y_true, y_pred)),
    }
    per_class = f1_score(y_true, y_pred, average=None, labels=range(3), zero_division=0)
    for label, f1 in zip(SENTIMENT_LABELS, per_class):
        out[f"{prefix}_f1_{label}"] = float(f1)
    return out


def binary_labels(frame: pd.DataFrame) -> np.ndarray:
    """Which rows carry a positive/negative label only (Chinese data), as a bool array."""
    if "binary" not in frame:
        return np.zeros(len(frame), bool)
    return frame["binary"].eq(True).to_numpy()  # English rows of a concat hold NaN there


def binary_metrics(y_true: np.ndarray, proba: np.ndarray, prefix: str) -> dict[str, float]:
    """Positive/negative data: the prediction is the likelier of the two (neutral is not a
    possible answer for it); macro-F1 over the two classes."""
    from sklearn.metrics import accuracy_score, f1_score

    neg, pos = LABEL_IDS["negative"], LABEL_IDS["positive"]
    y_pred = np.where(proba[:, pos] >= proba[:, neg], pos, neg)
    return {
        f"{prefix}_macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=[neg, pos], zero_division=0)),
        f"{prefix}_accuracy": float(accuracy_score(y_true, y_pred)),
    }


def bilingual_metrics(y_true: np.ndarray, proba: np.ndarray, binary: np.ndarray, prefix: str) -> dict[str, float]:
    """English (3-class) metrics under `prefix`; with binary rows also `zh_<prefix>` metrics,
    and `prefix`_macro_f1 becomes the mean of the two (what early stopping watches).
    All rows binary (a shop without neutral ratings): the binary metrics under `prefix`."""
    if len(binary) and binary.all():
        return binary_metrics(y_true, proba, prefix)
    metrics = classification_metrics(y_true[~binary], proba[~binary].argmax(1), prefix)
    if binary.any():
        metrics.update(binary_metrics(y_true[binary], proba[binary], f"zh_{prefix}"))
        metrics[f"en_{prefix}_macro_f1"] = metrics[f"{prefix}_macro_f1"]
        metrics[f"{prefix}_macro_f1"] = (metrics[f"{prefix}_macro_f1"] + metrics[f"zh_{prefix}_macro_f1"]) / 2
    return metrics


LABEL_IDS = {label: i for i, label in enumerate(SENTIMENT_LABELS)}


def evaluate_and_plot(
    name: str, proba: np.ndarray, y_true: np.ndarray, binary: np.ndarray, prefix: str = "test"
) -> dict[str, float]:
    """The metrics; confusion matrix, classification report and calibration plot into the
    active run (the caller logs the metrics, linked to the model it logs)."""
    import mlflow
    from sklearn.metrics import classification_report, confusion_matrix

    from training import plots

    if binary.all():  # never neutral: the likelier of negative and positive
        proba = proba * (np.arange(proba.shape[1]) != LABEL_IDS["neutral"])
        proba = proba / proba.sum(1, keepdims=True)
    y_pred = proba.argmax(1)
    metrics = bilingual_metrics(y_true, proba, binary, prefix)
    cm = confusion_matrix(y_true, y_pred, labels=range(3))
    mlflow.log_figure(
        plots.confusion_matrix(cm, list(SENTIMENT_LABELS), f"{name}: {prefix} confusion"),
        f"{prefix}_confusion_matrix.png",
    )
    mlflow.log_text(
        classification_report(
            y_true, y_pred, labels=range(3), target_names=list(SENTIMENT_LABELS), digits=3, zero_division=0
        ),
        f"{prefix}_classification_report.txt",
    )
    mlflow.log_figure(
        plots.calibration(proba.max(1), (y_pred == y_true).astype(float), f"{name}: calibration"),
        f"{prefix}_calibration.png",
    )
    return metrics


def log_drift_reference(test: pd.DataFrame, proba: np.ndarray) -> None:
    """The test set's review lengths and this model's labels on it, saved with the run:
    what the served model's drift is measured against (registry.health)."""
    from registry.health import log_reference, reference

    labels = np.asarray(SENTIMENT_LABELS)[np.asarray(proba).argmax(axis=1)]
    log_reference(reference({"text_chars": test["input"].str.len().to_numpy(dtype=float)}, labels, "label"))
