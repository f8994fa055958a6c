"""Aspect sentiment on SemEval-2014 Laptops (../shared/data/semeval14_laptops): the
polarity of a given aspect term on its 638 test terms.

Without aspect labels (what a shop has): the clause rule (the sentiment of the clause
that mentions the aspect, portrait.text.aspects.clause_mentioning) against the
sentence-level baseline (the whole sentence's sentiment), with the same sentiment
model: the English shop's TF-IDF + LR on the Amazon reviews' star labels, or with
--champion the registry's review-sentiment champion (after `make demo`).

With --aspect-model: `portrait train aspects`' recipe (training.sentiment.aspects)
fine-tuned on the SemEval train set (15% per class held out as validation), the
aspect-conditioned model against the same recipe trained on the sentence alone (the
sentence-level baseline with the same data and encoder). --grid also fits the
learning rates and epochs ASPECT_DEFAULTS were chosen from and prints their
validation macro-F1 (the choice is made there, never on test).

    .venv/bin/python bench/aspects.py [--champion] [--aspect-model [--grid]]
"""

from __future__ import annotations

import gzip
import json
import sys
import time

import common  # bench/common.py (bench/ is on sys.path when a script runs)
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from portrait.settings import get_settings
from portrait.text.aspects import clause_mentioning
from portrait.text.labels import SENTIMENT_LABELS, ratings_sentiment
from training.sentiment.aspects import ASPECT_DEFAULTS, VAL_SHARE, aspect_proba, read_aspect_set, stratified_parts
from training.sentiment.baselines import baseline_proba, train_baseline
from training.sentiment.config import FineTuneConfig
from training.sentiment.finetune import fine_tune

DATA = get_settings().resolved_data_dir()
SEMEVAL = DATA / "semeval14_laptops"
AMAZON = DATA / "amazon_musical_instruments_5core" / "reviews_Musical_Instruments_5.json.gz"
GRID = [(5e-5, 4), (1e-4, 4), (2e-4, 4), (1e-4, 6)]  # (lr, epochs)


def shop_model():
    with gzip.open(AMAZON, "rt") as f:
        reviews = [json.loads(line) for line in f]
    frame = pd.DataFrame(
        {
            "input": [f"{r.get('summary', '')}. {r.get('reviewText', '')}" for r in reviews],
            "label": ratings_sentiment(pd.Series([int(r["overall"]) for r in reviews])),
        }
    )
    pipeline, _ = train_baseline(frame)
    return pipeline


class Champion:
    """models:/review-sentiment@champion as the bench's classifier."""

    def __init__(self) -> None:
        from registry import tracking
        from registry.models import SENTIMENT, load

        tracking.configure(get_settings())
        self.model, self.info = load(SENTIMENT)

    def labels(self, texts: list[str]) -> list[str]:
        return list(self.model.predict(pd.DataFrame({"text": texts}))["label"])


def score(truth: pd.Series, predicted: list[str]) -> tuple[float, float]:
    return accuracy_score(truth, predicted), f1_score(truth, predicted, average="macro")


def row(name: str, scores: tuple[float, float]) -> str:
    return f"{name:<44}{scores[0]:>10.4f}{scores[1]:>10.4f}"


def without_aspect_labels(test: pd.DataFrame, champion: bool) -> None:
    model = Champion() if champion else shop_model()

    def labels(texts: list[str]) -> list[str]:
        if isinstance(model, Champion):
            return model.labels(texts)
        return [SENTIMENT_LABELS[i] for i in baseline_proba(model, texts).argmax(1)]

    clause = [clause_mentioning(s, a) for s, a in zip(test["input"], test["aspect"])]
    if isinstance(model, Champion):
        print(f"sentiment model: review-sentiment v{model.info.version}, the champion (no SemEval training)")
    else:
        print("sentiment model: TF-IDF + LR on the Amazon reviews' star labels (no SemEval training)")
    sentence = score(test["label"], labels(list(test["input"])))
    by_clause = score(test["label"], labels(clause))
    print(f"{'method':<44}{'accuracy':>10}{'macro-F1':>10}")
    print(row("sentence-level (baseline)", sentence))
    print(row("clause of the aspect (Portrait's rule)", by_clause))
    shorter = sum(c != s.rstrip(" .!?") for c, s in zip(clause, test["input"]))
    print(f"ratio clause/sentence accuracy: {by_clause[0] / sentence[0]:.3f}x; {shorter} terms sit in a shorter clause")


def fit(train: pd.DataFrame, val: pd.DataFrame, lr: float, epochs: int):
    cfg = FineTuneConfig(lr=lr, epochs=epochs, max_length=ASPECT_DEFAULTS.max_length)
    started = time.perf_counter()
    result = fine_tune(train, val, cfg, progress=False)
    predicted = [SENTIMENT_LABELS[i] for i in aspect_proba(result, val, cfg).argmax(1)]
    return result, cfg, score(val["label"], predicted), time.perf_counter() - started


def with_aspect_labels(test: pd.DataFrame, grid: bool) -> None:
    labelled = read_aspect_set(SEMEVAL / "laptops_train_3way.txt")
    train, val = stratified_parts(labelled.rows, VAL_SHARE, FineTuneConfig.seed)
    print(
        f"\naspect-labelled: SemEval train {len(train):,}, validation {len(val):,} (15% per class), test {len(test):,}"
    )
    if grid:
        print(f"{'grid (aspect-conditioned)':<44}{'val acc':>10}{'val F1':>10}")
        for lr, epochs in GRID:
            _, _, val_scores, _ = fit(train, val, lr, epochs)
            print(row(f"lr {lr:g}, {epochs} epochs", val_scores))
    lr, epochs = ASPECT_DEFAULTS.lr, ASPECT_DEFAULTS.epochs
    print(f"recipe: lr {lr:g}, {epochs} epochs, max length {ASPECT_DEFAULTS.max_length}, MiniLM-L6 (CPU)")
    print(f"{'method':<44}{'accuracy':>10}{'macro-F1':>10}{'val F1':>10}")

    def sentence_only(f: pd.DataFrame) -> pd.DataFrame:  # the same rows, the aspect hidden
        return f[["input", "label"]]

    by_clause = test.assign(input=[clause_mentioning(s, a) for s, a in zip(test["input"], test["aspect"])])
    base = _tested(
        "sentence-level, same recipe (baseline)",
        fit(sentence_only(train), sentence_only(val), lr, epochs),
        [sentence_only(test)],
    )
    aspect = _tested("aspect-conditioned (text [SEP] aspect)", fit(train, val, lr, epochs), [test, by_clause])
    print(
        f"aspect-conditioned minus sentence-level: accuracy {aspect[0] - base[0]:+.4f}, macro-F1 {aspect[1] - base[1]:+.4f}"
    )


def _tested(name: str, fitted, frames: list[pd.DataFrame]) -> tuple[float, float]:
    """Prints the model's test scores on each frame (the sentence; then the clause the build gives it)."""
    result, cfg, val_scores, seconds = fitted
    scores = []
    for i, frame in enumerate(frames):
        predicted = [SENTIMENT_LABELS[k] for k in aspect_proba(result, frame, cfg).argmax(1)]
        scores.append(score(frame["label"], predicted))
        print(row(name + (", on the clause" if i else ""), scores[-1]) + f"{val_scores[1]:>10.4f}  ({seconds:.0f} s)")
    return scores[0]


def main() -> None:
    args = sys.argv[1:]
    test = read_aspect_set(SEMEVAL / "laptops_test_3way.txt").rows
    print(f"SemEval-14 Laptops test: {len(test)} aspect terms ({test['label'].value_counts().to_dict()})")
    print(f"majority class share: {test['label'].value_counts(normalize=True).max():.4f}")
    without_aspect_labels(test, "--champion" in args)
    if "--aspect-model" in args:
        with_aspect_labels(test, "--grid" in args)


if __name__ == "__main__":
    flags = [a.lstrip("-") for a in sys.argv[1:] if a in ("--champion", "--aspect-model")]
    with common.recorded("-".join(["aspects", *flags]), script="aspects"):
        main()
