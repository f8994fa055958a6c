"""Plots logged as MLflow artifacts: confusion matrix, learning curves,
calibration, residuals. Each returns a matplotlib figure."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def _subplots(*args, **kwargs):
    """A figure and its axes without pyplot: no backend chosen for the whole process,
    and nothing kept open once MLflow has saved the figure."""
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(*args, **kwargs)


def confusion_matrix(matrix: np.ndarray, labels: list[str], title: str):
    fig, ax = _subplots(figsize=(4.8, 4.2))
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{matrix[i, j]}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def learning_curves(history: list[dict], metrics: list[str], title: str):
    fig, axes = _subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        points = [(h["step"], h[metric]) for h in history if h.get(metric) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3)
        ax.set_xlabel("step")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def calibration(confidence: np.ndarray, correct: np.ndarray, title: str, bins: int = 10):
    """Reliability diagram: accuracy against confidence of the predicted class."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges) - 1, 0, bins - 1)
    mids, accs, counts = [], [], []
    for b in range(bins):
        mask = which == b
        if mask.any():
            mids.append(confidence[mask].mean())
            accs.append(correct[mask].mean())
            counts.append(int(mask.sum()))
    fig, ax = _subplots(figsize=(4.5, 4.2))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    ax.plot(mids, accs, marker="o", label="model")
    for x, y, n in zip(mids, accs, counts):
        ax.annotate(str(n), (x, y), fontsize=7, textcoords="offset points", xytext=(3, -9))
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def residuals(y_true: np.ndarray, y_pred: np.ndarray, title: str):
    fig, axes = _subplots(1, 2, figsize=(9, 3.8))
    for rating in range(1, 6):
        mask = y_true == rating
        if mask.any():
            axes[0].boxplot(y_pred[mask], positions=[rating], widths=0.5)
    axes[0].plot([1, 5], [1, 5], "--", color="grey")
    axes[0].set_xlabel("true rating")
    axes[0].set_ylabel("predicted rating")
    axes[1].hist(y_pred - y_true, bins=40, color="tab:blue")
    axes[1].set_xlabel("predicted - true")
    axes[1].set_ylabel("reviews")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def ranking_ratios(results: dict):
    """NDCG@10 against popularity per protocol, with 95% intervals: the blend, the
    classic recommenders beside it and the ablation (results: training.rating.ranking's
    ProtocolResult by protocol name)."""
    fig, axes = _subplots(1, len(results), figsize=(4.6 * len(results), 4.2), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items()):
        rows = {"blend": r.ratio["ndcg"], **r.classic, **r.ablation}
        labels = list(rows)
        values = np.array([rows[n][0] for n in labels])
        errors = np.array([[rows[n][0] - rows[n][1] for n in labels], [rows[n][2] - rows[n][0] for n in labels]])
        colors = ["tab:green"] + ["tab:grey"] * len(r.classic) + ["tab:orange"] * len(r.ablation)
        y = np.arange(len(labels))[::-1]
        ax.barh(y, values, xerr=np.nan_to_num(errors), color=colors, capsize=3)
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_yticks(y, labels)
        ax.set_xlabel("NDCG@10 / popularity (test)")
        ax.set_title(f"{name} ({r.units} cases)")
    fig.tight_layout()
    return fig
