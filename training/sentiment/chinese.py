"""Chinese review sentiment data (online_shopping_10_cats: positive / negative in
10 categories) and its baseline, the first pieces of bilingual sentiment training.

The split is fixed by a hash of the review text, so duplicate texts (49 in the
file) never straddle it and every deployment gets the same one; applied within
each category, it is stratified by category: 70% train, 10% validation, 20% test.

    .venv/bin/python -m training.sentiment.chinese     # the jieba TF-IDF + LR baseline on that split
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from portrait.settings import get_settings
from training.common import word_tfidf

SPLITS = ((70, "train"), (80, "val"), (100, "test"))  # cumulative percent of the hash buckets


def split_of(text: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % 100
    return next(name for upper, name in SPLITS if bucket < upper)


def load_chinese(data_dir: Path) -> pd.DataFrame:
    """category, input, label (positive | negative), split."""
    from portrait.ingest.zh_sample import source_rows

    rows = source_rows(data_dir)
    df = pd.DataFrame(
        {
            "category": [r["cat"] for r in rows],
            "input": [r["review"].strip().lstrip("\ufeff") for r in rows],
            "label": ["positive" if r["label"] == "1" else "negative" for r in rows],
        }
    )
    df["split"] = [split_of(t) for t in df["input"]]
    return df


def train_jieba_baseline(train: pd.DataFrame):
    """jieba-tokenized TF-IDF (1-2 grams) + logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(word_tfidf(chinese=True), LogisticRegression(max_iter=2000, C=4.0))
    return model.fit(train["input"], train["label"])


def main() -> None:
    from sklearn.metrics import f1_score

    df = load_chinese(get_settings().resolved_data_dir())
    counts = df.groupby(["split"]).size().to_dict()
    share = df.groupby("category")["split"].apply(lambda s: (s == "test").mean())
    print(
        f"online_shopping_10_cats: {len(df):,} reviews; split {counts}; test share per category {share.min():.3f}-{share.max():.3f}"
    )
    train, test = df[df["split"] == "train"], df[df["split"] == "test"]
    model = train_jieba_baseline(train)
    predicted = model.predict(test["input"])
    f1 = f1_score(test["label"], predicted, average="macro")
    print(f"jieba TF-IDF + LR, trained on {len(train):,}: test macro-F1 {f1:.4f} on {len(test):,} (positive/negative)")
    for n in (2000, 6000):
        sample = train.groupby("category").sample(frac=n / len(train), random_state=0)  # stratified
        small = f1_score(test["label"], train_jieba_baseline(sample).predict(test["input"]), average="macro")
        print(f"  trained on a stratified {len(sample):,}: test macro-F1 {small:.4f}")


if __name__ == "__main__":
    main()
