"""Aspect sentiment on SemEval-2014 Laptops (../shared/data/semeval14_laptops): the
polarity of a given aspect term, by Portrait's rule (the sentiment of the clause that
mentions the aspect, portrait.text.aspects.clauses) against the sentence-level
baseline (the whole sentence's sentiment), with the same sentiment model: the
English shop's TF-IDF + LR baseline trained on the Amazon reviews' star labels
(what a shop has before any aspect labels), or with --champion the registry's
review-sentiment champion (after `make demo`: the fine-tuned encoder). Nothing is
fitted on SemEval.

    .venv/bin/python bench/aspects.py [--champion]
"""

from __future__ import annotations

import gzip
import json

import common  # bench/common.py (bench/ is on sys.path when a script runs)
import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from portrait.settings import get_settings
from portrait.text.aspects import clauses
from portrait.text.labels import SENTIMENT_LABELS, ratings_sentiment
from training.sentiment.baselines import baseline_proba, train_baseline

DATA = get_settings().resolved_data_dir()
SEMEVAL = DATA / "semeval14_laptops" / "laptops_test_3way.txt"
AMAZON = DATA / "amazon_musical_instruments_5core" / "reviews_Musical_Instruments_5.json.gz"


def semeval() -> pd.DataFrame:
    lines = SEMEVAL.read_text(encoding="utf-8").splitlines()
    rows = []
    for i in range(0, len(lines) - 2, 3):
        template, term, polarity = lines[i], lines[i + 1].strip(), lines[i + 2].strip()
        rows.append({"sentence": template.replace("$T$", term), "term": term, "polarity": polarity})
    return pd.DataFrame(rows)


def clause_of(sentence: str, term: str) -> str:
    """The clause that mentions the term (the sentence when none does alone)."""
    found = [c for c in clauses(sentence) if term.lower() in c.lower()]
    return found[0] if found else sentence


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


def score(pipeline, texts: list[str], truth: pd.Series) -> tuple[float, float]:
    if isinstance(pipeline, Champion):
        predicted = pipeline.labels(texts)
    else:
        predicted = [SENTIMENT_LABELS[i] for i in baseline_proba(pipeline, texts).argmax(1)]
    return accuracy_score(truth, predicted), f1_score(truth, predicted, average="macro")


def main() -> None:
    import sys

    data = semeval()
    champion = "--champion" in sys.argv[1:]
    pipeline = Champion() if champion else shop_model()
    data["clause"] = [clause_of(s, t) for s, t in zip(data["sentence"], data["term"])]
    sentence = score(pipeline, list(data["sentence"]), data["polarity"])
    clause = score(pipeline, list(data["clause"]), data["polarity"])
    multi = data["clause"] != data["sentence"].str.rstrip(" .!?")
    print(f"SemEval-14 Laptops test: {len(data)} aspect terms ({data['polarity'].value_counts().to_dict()})")
    if isinstance(pipeline, Champion):
        print(f"sentiment model: review-sentiment v{pipeline.info.version}, the champion (no SemEval training)")
    else:
        print("sentiment model: TF-IDF + LR on the Amazon reviews' star labels (no SemEval training)")
    print(f"{'method':<32}{'accuracy':>10}{'macro-F1':>10}")
    print(f"{'sentence-level (baseline)':<32}{sentence[0]:>10.4f}{sentence[1]:>10.4f}")
    print(f"{'clause of the aspect (Portrait)':<32}{clause[0]:>10.4f}{clause[1]:>10.4f}")
    print(
        f"ratio clause/sentence accuracy: {clause[0] / sentence[0]:.3f}x; "
        f"{int(multi.sum())} terms ({multi.mean():.0%}) sit in a clause shorter than their sentence"
    )
    print(f"majority class share: {data['polarity'].value_counts(normalize=True).max():.4f}")
    np.random.seed(0)


if __name__ == "__main__":
    import sys

    with common.recorded("aspects-champion" if "--champion" in sys.argv[1:] else "aspects"):
        main()
