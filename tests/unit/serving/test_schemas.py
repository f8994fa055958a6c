"""The profile's aspects: the feature's string read back as structured aspects."""

from serving.schemas import parse_aspects


def test_aspects_are_read_with_their_sentiment_and_junk_is_skipped():
    got = parse_aspects("sound quality +, 安装费 -, 制冷效果 ~, broken, ")
    assert [(a.aspect, a.sentiment) for a in got] == [
        ("sound quality", "positive"),
        ("安装费", "negative"),
        ("制冷效果", "mixed"),
    ]
    assert parse_aspects(None) == [] and parse_aspects("") == []
