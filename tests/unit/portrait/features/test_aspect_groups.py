"""Near-synonym grouping of aspects, with a hand-made embedding: the threshold sits just
above the most similar pair the list says differ, an aspect joins the closest head only,
never another language's, and an encoder that cannot tell the list's pairs apart merges
nothing."""

from __future__ import annotations

import numpy as np
import pytest

from portrait.features.aspect_groups import MARGIN, assign, recall, thresholds

# 2-d directions: angles in degrees; synonyms 10 degrees apart, different aspects 40+
ANGLES = {"price": 0, "cost": 10, "quality": 45, "screen": 90, "display": 100, "价格": 0, "价钱": 8, "质量": 50}
PAIRS = (
    ("en", "price", "cost", True),
    ("en", "screen", "display", True),
    ("en", "price", "quality", False),
    ("zh", "价格", "价钱", True),
    ("zh", "价格", "质量", False),
)


def embed(texts: list[str]) -> np.ndarray:
    rad = np.deg2rad([ANGLES[t] for t in texts])
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def test_threshold_sits_above_the_most_similar_different_pair_and_merges_the_synonyms():
    got = thresholds(embed, PAIRS)
    assert got["en"] == pytest.approx(np.cos(np.deg2rad(45)) + MARGIN, abs=1e-6)
    assert got["zh"] == pytest.approx(np.cos(np.deg2rad(50)) + MARGIN, abs=1e-6)
    assert recall(embed, got, PAIRS) == {"en": 1.0, "zh": 1.0}


def test_an_aspect_joins_the_closest_head_of_its_language_or_heads_its_own_group():
    new = ["price", "screen", "cost", "display", "quality", "价钱"]
    got = assign(new, embed(new), ["价格"], embed(["价格"]), {"en": 0.9, "zh": 0.9})
    heads = {aspect: head for aspect, head, _ in got}
    assert heads == {
        "price": "price",
        "screen": "screen",
        "cost": "price",
        "display": "screen",
        "quality": "quality",
        "价钱": "价格",  # an existing head from an earlier build keeps its name
    }
    assert [c for a, _, c in got if a == "cost"][0] == pytest.approx(np.cos(np.deg2rad(10)), abs=1e-6)


def test_an_encoder_that_cannot_tell_the_pairs_apart_merges_nothing():
    def unk(texts: list[str]) -> np.ndarray:  # every Chinese word the same vector, as [UNK] makes them
        return np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(texts), 1))

    threshold = thresholds(unk, PAIRS)
    assert threshold["zh"] > 1.0
    new = ["价格", "价钱", "质量"]
    assert [head for _, head, _ in assign(new, unk(new), [], np.zeros((0, 2)), threshold)] == new
