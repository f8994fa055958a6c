"""A served model's health, as numbers: the training set's reference distributions
(saved with the champion's MLflow run), drift against them (PSI per numeric feature,
Jensen-Shannon for the predictions), online quality from late labels with intervals,
and the rule that promotes a shadowed challenger on it.

Statistics are scipy and numpy: PSI over bins fixed on the training set is a few
lines and no maintained library computes it from saved bins (Evidently recomputes
its bins on each pair of frames, and would add a heavy dependency to serving)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

REFERENCE_ARTIFACT = "drift_reference.json"
BINS = 10
EPS = 1e-4  # a bin's share floor: PSI's log of an empty bin is otherwise infinite
PSI_ALERT = 0.2  # the usual reading: < 0.1 stable, 0.1-0.2 moderate, > 0.2 drifted
LATENCY_RATIO = 1.2  # a challenger may be this much slower at p95 and still be promoted


# --- reference and drift ---------------------------------------------------------


def quantile_edges(values: np.ndarray, bins: int = BINS) -> list[float]:
    """Inner edges of `bins` quantile bins of the finite values (fewer when values repeat)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return []
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    return [float(e) for e in edges]


def shares(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Share of the values in each bin: len(edges) + 1 value bins, then one for missing."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    counts = np.bincount(np.searchsorted(edges, values[finite], side="right"), minlength=len(edges) + 1)
    counts = np.append(counts, (~finite).sum()).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Population stability index: sum over bins of (a - e) ln(a / e), shares floored at EPS."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPS)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Jensen-Shannon distance (base 2: 0 same, 1 disjoint) of two distributions."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(np.asarray(expected, float), np.asarray(actual, float), base=2))


def reference(features: dict[str, np.ndarray], predictions: np.ndarray | Sequence[str], kind: str) -> dict:
    """The training set's distributions drift is measured against: quantile bins of each
    numeric feature and of the predictions ('rating': numbers; 'label': classes)."""
    out: dict = {"features": {}, "rows": int(len(predictions))}
    for name, values in features.items():
        values = np.asarray(values, dtype=np.float64)
        edges = quantile_edges(values)
        out["features"][name] = {"edges": edges, "shares": shares(values, edges).round(6).tolist()}
    if kind == "label":
        labels, counts = np.unique(np.asarray(predictions, dtype=str), return_counts=True)
        out["prediction"] = {"kind": "label", "labels": labels.tolist(), "shares": (counts / counts.sum()).tolist()}
    else:
        values = np.asarray(predictions, dtype=np.float64)
        edges = quantile_edges(values)
        out["prediction"] = {"kind": "rating", "edges": edges, "shares": shares(values, edges).round(6).tolist()}
    return out


def log_reference(ref: dict) -> None:
    """Saved as an artifact of the active MLflow run (the run the registered version points to)."""
    import mlflow

    mlflow.log_dict(ref, REFERENCE_ARTIFACT)


def load_reference(run_id: str) -> dict | None:
    """The reference saved with a run; None for runs from before it was saved."""
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT)
    except Exception:  # noqa: BLE001 - no such artifact (an older run) or no store: no drift for it
        return None
    with open(path) as f:
        return json.load(f)


@dataclass(frozen=True)
class Drift:
    name: str
    score: float | None  # PSI (features) or JS distance (predictions); None: insufficient data
    rows: int
    metric: str  # "psi" or "js"

    @property
    def verdict(self) -> str:
        if self.score is None:
            return "insufficient data"
        if self.metric == "js":
            return "drifted" if self.score > 0.1 else "stable"
        return "drifted" if self.score > PSI_ALERT else "moderate" if self.score > 0.1 else "stable"


def feature_drift(ref: dict, columns: dict[str, list], min_rows: int) -> list[Drift]:
    """PSI of each referenced feature's served values against the reference's bins."""
    out = []
    for name, spec in ref.get("features", {}).items():
        values = np.asarray([np.nan if v is None else v for v in columns.get(name, [])], dtype=np.float64)
        score = psi(spec["shares"], shares(values, spec["edges"])) if len(values) >= min_rows else None
        out.append(Drift(name, score, len(values), "psi"))
    return out


def prediction_drift(ref: dict, predictions: Sequence, min_rows: int) -> Drift:
    """JS distance of the served predictions' distribution and the reference's."""
    spec = ref.get("prediction")
    if spec is None or len(predictions) < min_rows:
        return Drift("prediction", None, len(predictions), "js")
    if spec["kind"] == "label":
        served = np.asarray([str(p) for p in predictions])
        actual = [float(np.mean(served == label)) for label in spec["labels"]]
        actual.append(float(np.mean(~np.isin(served, spec["labels"]))))  # a label the training set never had
        return Drift("prediction", js_distance([*spec["shares"], 0.0], actual), len(predictions), "js")
    values = np.asarray(predictions, dtype=np.float64)
    return Drift("prediction", js_distance(spec["shares"], shares(values, spec["edges"])), len(values), "js")


# --- online quality ------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    metric: str
    value: float | None
    low: float | None
    high: float | None
    n: int

    def text(self) -> str:
        if self.value is None:
            return f"no verdict ({self.n} labels)"
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}] (n={self.n})"


def bootstrap(
    statistic, arrays: Sequence[np.ndarray], metric: str, min_n: int, level: float = 0.95, rounds: int = 1000
) -> Estimate:
    """statistic(*arrays) with a percentile bootstrap interval over the rows (seeded);
    no verdict below min_n rows."""
    n = len(arrays[0]) if arrays else 0
    if n < max(min_n, 2):
        return Estimate(metric, None, None, None, n)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, n, size=(rounds, n))
    stats = np.array([statistic(*(a[i] for a in arrays)) for i in idx])
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(stats, [tail, 100 - tail])
    return Estimate(metric, float(statistic(*arrays)), float(low), float(high), n)


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, float) - np.asarray(actual, float)) ** 2)))


def macro_f1(predicted: np.ndarray, actual: np.ndarray) -> float:
    """scikit-learn's macro-F1 (over the labels either side has, zero_division=0) in numpy:
    the bootstrap calls it 1,000 times per model every monitoring round, and f1_score's
    input checks alone kept half a core busy in an idle service."""
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    labels, codes = np.unique(np.concatenate([actual, predicted]), return_inverse=True)
    k = len(labels)
    if not k:
        return 0.0
    confusion = np.bincount(codes[: len(actual)] * k + codes[len(actual) :], minlength=k * k).reshape(k, k)
    both = confusion.sum(axis=0) + confusion.sum(axis=1)  # predicted + true counts = 2tp + fp + fn
    return float(np.mean(np.where(both > 0, 2 * np.diag(confusion) / np.maximum(both, 1), 0.0)))


def hit_rate(hits: np.ndarray) -> float:
    return float(np.mean(hits))


# --- the online promotion rule ---------------------------------------------------------------


@dataclass(frozen=True)
class ShadowSummary:
    """What the log says of one alias of a model."""

    p95_latency_ms: float | None
    error_rate: float
    answers: int


@dataclass(frozen=True)
class RuleDecision:
    promote: bool
    reasons: list[str]


def promotion_rule(
    difference: Estimate, higher_is_better: bool, champion: ShadowSummary, challenger: ShadowSummary
) -> RuleDecision:
    """Promote the challenger when its online metric is better than the champion's with
    the paired difference's interval (challenger - champion) excluding zero, its p95
    latency is at most LATENCY_RATIO times the champion's, and its error rate no higher."""
    reasons, ok = [], True
    if difference.value is None or difference.low is None or difference.high is None:
        return RuleDecision(False, [f"online metric: {difference.text()}, below the minimum count"])
    better = difference.low > 0 if higher_is_better else difference.high < 0
    ok &= better
    reasons.append(f"online {difference.metric} difference {difference.text()}: {'better' if better else 'not better'}")
    if champion.p95_latency_ms and challenger.p95_latency_ms is not None:
        ratio = challenger.p95_latency_ms / champion.p95_latency_ms
        fast = ratio <= LATENCY_RATIO
        ok &= fast
        reasons.append(f"p95 latency {ratio:.2f}x the champion's ({'ok' if fast else f'above {LATENCY_RATIO}x'})")
    errors_ok = challenger.error_rate <= champion.error_rate
    ok &= errors_ok
    reasons.append(
        f"errors {challenger.error_rate:.2%} vs {champion.error_rate:.2%} ({'ok' if errors_ok else 'higher'})"
    )
    return RuleDecision(bool(ok), reasons)


def columns_of(summaries: Iterable[dict | None]) -> dict[str, list]:
    """Logged feature summaries (name -> values, one per logged answer) as one column per name."""
    out: dict[str, list] = {}
    for summary in summaries:
        for name, values in (summary or {}).items():
            out.setdefault(name, []).extend(values)
    return out
