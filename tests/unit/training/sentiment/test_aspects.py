"""Aspect-labelled sets (SemEval three-line format and CSV), their stratified parts, the
clause rule, and the aspect-conditioned input the fine-tune and the served model share."""

import pandas as pd
import pytest

from training.sentiment.aspects import language, read_aspect_set, rule_labels, stratified_parts

SEMEVAL = """I charge it at night and skip taking the $T$ with me.
cord
neutral
The $T$ is great but the keyboard is awful.
screen
positive
No marker in this sentence.
battery
negative
The $T$ is loud and also quiet.
fan
conflict
The $T$ works.
wifi
"""


def test_the_semeval_format_is_read_and_bad_examples_are_set_aside_with_their_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(SEMEVAL, encoding="utf-8")
    got = read_aspect_set(path)
    assert got.rows.to_dict("records") == [
        {"input": "I charge it at night and skip taking the cord with me.", "aspect": "cord", "label": "neutral"},
        {"input": "The screen is great but the keyboard is awful.", "aspect": "screen", "label": "positive"},
    ]
    assert got.set_aside == [
        (14, "2 trailing line(s): the format has three lines per aspect"),
        (7, "no $T$ in the sentence line"),
        (10, "polarity 'conflict' is not one of negative, neutral, positive"),
    ]


def test_a_csv_needs_its_columns_and_each_aspect_must_be_in_its_text(tmp_path):
    path = tmp_path / "aspects.csv"
    path.write_text(
        "text,aspect,polarity\n外观漂亮，安装费太贵,安装费,Negative\nThe screen is dim,battery,negative\n,x,positive\n",
        encoding="utf-8",
    )
    got = read_aspect_set(path)
    assert got.rows.to_dict("records") == [{"input": "外观漂亮，安装费太贵", "aspect": "安装费", "label": "negative"}]
    assert got.set_aside == [(3, "aspect 'battery' is not in the text"), (4, "empty text or aspect")]
    assert language(got.rows) == "zh"
    (tmp_path / "bad.csv").write_text("sentence,aspect\nx,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing column"):
        read_aspect_set(tmp_path / "bad.csv")


def test_parts_hold_the_same_share_of_every_class():
    rows = pd.DataFrame(
        {"input": [f"t{i}" for i in range(100)], "aspect": "t", "label": ["positive"] * 60 + ["negative"] * 40}
    )
    rest, part = stratified_parts(rows, 0.15, seed=13)
    assert part["label"].value_counts().to_dict() == {"positive": 9, "negative": 6}
    assert len(rest) == 85 and not set(rest.index) & set(part.index)
    assert stratified_parts(rows, 0.15, seed=13)[1].index.equals(part.index)  # seeded


def test_the_clause_rule_labels_the_clause_that_mentions_the_aspect():
    seen = []

    def labeler(frame):
        seen.extend(frame["text"])
        return ["positive" if "great" in t else "negative" for t in frame["text"]]

    rows = pd.DataFrame(
        {"input": ["The screen is great, but the keyboard is awful"] * 2, "aspect": ["screen", "keyboard"]}
    )
    assert rule_labels(rows, labeler) == ["positive", "negative"]
    assert seen == ["The screen is great", "the keyboard is awful"]


def test_the_aspect_is_the_second_segment_and_the_text_is_truncated_first(tiny_bert):
    from transformers import AutoTokenizer

    from training.sentiment.finetune import token_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    frame = pd.DataFrame({"input": ["the battery life is poor " * 20], "aspect": ["battery life"]})
    (ids,) = token_ids(tokenizer, "", frame, max_length=16)
    assert len(ids) == 16 and ids.count(tokenizer.sep_token_id) == 2
    first_sep = ids.index(tokenizer.sep_token_id)
    assert tokenizer.decode(ids[first_sep + 1 : -1]) == "battery life"  # the aspect whole, after the text
    assert tokenizer.decode(ids[1:first_sep]).startswith("the battery life is poor")
