"""The fixed Chinese split: by text hash, so it never changes and duplicates stay together."""

from __future__ import annotations

from collections import Counter

from training.sentiment.chinese import split_of


def test_the_split_is_fixed_by_text_and_has_the_declared_shares():
    texts = [f"评论{i}：质量不错" for i in range(5000)]
    splits = [split_of(t) for t in texts]
    assert splits == [split_of(t) for t in texts]  # the same text, the same split, every run
    shares = {k: v / len(texts) for k, v in Counter(splits).items()}
    assert abs(shares["train"] - 0.7) < 0.03 and abs(shares["val"] - 0.1) < 0.02 and abs(shares["test"] - 0.2) < 0.03
