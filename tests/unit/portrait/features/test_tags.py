"""Interest tags as aspects with sentiment: each mention takes its clause's label, and
sentiment or template words never become tags."""

import numpy as np
import pandas as pd

from portrait.features.tags import aspect_mentions, running_tags


def test_each_aspect_takes_the_label_of_its_own_clause():
    reviews = pd.DataFrame({"rating": [3], "text": ["The strings sound great but the tuner broke after a week."]})
    calls = []

    def labeler(clauses):
        calls.append(list(clauses["text"]))
        return ["positive" if "great" in t else "negative" for t in clauses["text"]]

    assert aspect_mentions(reviews, labeler) == [[("string", "positive"), ("tuner", "negative")]]
    assert calls == [["The strings sound great", "the tuner broke after a week"]]  # one call for every clause


def test_an_aspect_model_labels_the_mentions_of_its_language_and_the_others_keep_their_clause():
    reviews = pd.DataFrame({"rating": [3, 2], "text": ["The strings sound great but the tuner broke.", "安装费太贵了"]})

    class WithAspects:  # the shape of registry.models.WithAspects
        language = "en"
        pairs: list = []

        def __call__(self, clauses):
            return ["neutral"] * len(clauses)

        def aspects(self, mentions):
            self.pairs += list(zip(mentions["text"], mentions["aspect"]))
            return ["negative" if a == "string" else "positive" for a in mentions["aspect"]]

    labeler = WithAspects()
    assert aspect_mentions(reviews, labeler) == [
        [("string", "negative"), ("tuner", "positive")],  # the aspect model's, not the clause's
        [("安装费", "neutral")],  # Chinese: not the English model's language, the clause rule's label
    ]
    assert labeler.pairs == [("The strings sound great", "string"), ("the tuner broke", "tuner")]


def test_running_tags_rank_by_mentions_and_restart_per_user():
    groups = np.array(["u1", "u1", "u2"])
    found = [[("price", "negative"), ("tone", "positive")], [("tone", "positive"), ("price", "positive")], []]
    assert running_tags(groups, found) == ["price -, tone +", "price ~, tone +", ""]


def test_sentiment_and_template_words_are_never_tags():
    texts = ["Great product, thanks! Very pleased.", "此用户未填写评价内容", "非常满意，好评！", "Five stars, love it"]
    reviews = pd.DataFrame({"rating": [5] * 4, "text": texts})
    found = aspect_mentions(reviews, lambda c: ["positive"] * len(c))
    assert found == [[], [], [], []]
