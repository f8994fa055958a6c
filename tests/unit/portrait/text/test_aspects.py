"""Aspect extraction, a few sentences per language: nouns and noun compounds are
aspects, each with its own clause; opinion, template and light-verb words never are."""

from __future__ import annotations

import pytest

from portrait.text.aspects import clause_mentioning, mentions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "The strings sound great but the tuner broke.",
            [("string", "The strings sound great"), ("tuner", "the tuner broke")],
        ),
        ("I love the price and the really solid build quality", [("price", None), ("build quality", None)]),
        ("the amp's input hums", [("amp input", None)]),  # a possessive folds into its noun
        ("Great product, thanks! Very pleased.", []),  # sentiment words, no aspect
        ("No review text", []),
        ("安装师傅很专业，但是安装费太贵", [("安装师傅", "安装师傅很专业"), ("安装费", "安装费太贵")]),
        ("电池续航很差", [("电池续航", None)]),  # noun compound; 续航 is tagged a name by jieba
        ("酒店是五星级的，房间有点小", [("酒店", None), ("房间", None)]),  # 是, 有点 end the run
        ("觉得价格合适", [("价格", None)]),
        ("此用户未填写评价内容", []),  # the platform's placeholder: no aspect
        ("好评！满意！", []),
    ],
)
def test_aspects_and_their_clauses(text, expected):
    got = mentions(text)
    assert [m.aspect for m in got] == [a for a, _ in expected]
    for m, (_, clause) in zip(got, expected):
        assert clause is None or m.clause == clause


def test_the_clause_that_mentions_a_term():
    assert clause_mentioning("The screen is bright, but the battery dies fast", "battery") == "the battery dies fast"
    assert clause_mentioning("Nice", "battery") == "Nice"  # no clause mentions it: the whole text
