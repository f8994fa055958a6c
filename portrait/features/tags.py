"""Interest tags: the aspects a user writes about, each with how they feel about it
("string +, tuner -", "安装费 -, 制冷效果 +"), from the aspect rule in
portrait.text.aspects. Each mention's sentiment is its clause's, labelled by the
build's sentiment labeler (the champion model; before one is promoted, the
review's stars), or with the aspect-sentiment champion where one is promoted. Sentiment and template words are never tags: the rule drops
opinion words, and placeholder reviews never reach the text profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from portrait.text.aspects import ASPECTS_PER_USER, SIGNS, mentions
from portrait.text.language import has_han

Mentions = list[tuple[str, str]]  # (aspect, its clause's sentiment label), in text order


def aspect_mentions(reviews: pd.DataFrame, labeler) -> list[Mentions]:
    """Each review's aspects with their sentiment: one labeler call for all the clauses
    that mention an aspect; a labeler with an aspect model (registry.models.WithAspects)
    labels each (clause, aspect) pair of its language instead. reviews: rating, text."""
    found = [mentions(text) for text in reviews["text"]]
    clauses = pd.DataFrame(
        {
            "rating": [r for r, ms in zip(reviews["rating"], found) for _ in ms],
            "summary": "",
            "text": [m.clause for ms in found for m in ms],
            "aspect": [m.aspect for ms in found for m in ms],
        }
    )
    own = np.zeros(len(clauses), dtype=bool)  # the mentions the aspect model labels
    if hasattr(labeler, "aspects") and len(clauses):
        own = clauses["text"].map(has_han).to_numpy() == (labeler.language == "zh")
    labels = np.empty(len(clauses), dtype=object)
    if own.any():
        labels[own] = np.asarray(labeler.aspects(clauses[own]))
    if (~own).any():
        labels[~own] = np.asarray(labeler(clauses[~own]))
    pairs = iter(labels)
    return [[(m.aspect, str(next(pairs))) for m in ms] for ms in found]


def running_tags(groups: np.ndarray, per_review: list[Mentions], top: int = ASPECTS_PER_USER) -> list[str]:
    """Per review (rows sorted by user and time), the user's tags so far: the most
    mentioned aspects first (ties: the latest), each with the sign of its clauses'
    mean sentiment ("+" above 0.25, "-" below -0.25, else "~")."""
    tags: list[str] = []
    score: dict[str, float] = {}
    count: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, found in enumerate(per_review):
        if i == 0 or groups[i] != groups[i - 1]:
            score, count, last = {}, {}, {}
        for aspect, label in found:
            score[aspect] = score.get(aspect, 0.0) + SIGNS.get(label, 0)
            count[aspect] = count.get(aspect, 0) + 1
            last[aspect] = i
        ranked = sorted(count, key=lambda a: (-count[a], -last[a]))[:top]
        tags.append(", ".join(f"{a} {_sign(score[a] / count[a])}" for a in ranked))
    return tags


def _sign(mean: float) -> str:
    return "+" if mean > 0.25 else "-" if mean < -0.25 else "~"


TAG_SIGNS = {"+": "positive", "-": "negative", "~": "mixed"}  # a tag's sign as the portrait says it


def parse_tags(tags: str | None) -> list[tuple[str, str]]:
    """A user's interest_tags string ("string +, tuner -") as (aspect, positive | negative | mixed)."""
    out = []
    for tag in (tags or "").split(", "):
        aspect, _, sign = tag.rpartition(" ")
        if aspect and sign in TAG_SIGNS:
            out.append((aspect, TAG_SIGNS[sign]))
    return out
