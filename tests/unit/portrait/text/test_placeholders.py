"""The placeholder rule: platform defaults in both languages, empty texts, and what
must never be flagged (short genuine reviews, a summary that is the review)."""

import pytest

from portrait.text.placeholders import (
    EMPTY,
    PLATFORM_DEFAULT,
    SAMPLE_PLACEHOLDERS,
    TEMPLATE_MIN_CHARS,
    fingerprint,
    normalise,
    placeholder_reason,
    template_threshold,
)


@pytest.mark.parametrize(
    "summary, text, reason",
    [
        ("", "此用户未填写评价内容", PLATFORM_DEFAULT),
        ("", "此用户未及时填写评价内容。", PLATFORM_DEFAULT),
        ("", "评价方未及时做出评价,系统默认好评!", PLATFORM_DEFAULT),
        ("", "评价方未及时做出评价，系统默认好评！", PLATFORM_DEFAULT),  # full-width punctuation (NFKC)
        ("", "默认好评", PLATFORM_DEFAULT),
        ("", "买家未及时评价，系统默认好评", PLATFORM_DEFAULT),
        ("", "No review text", PLATFORM_DEFAULT),
        ("", "  NO REVIEW TEXT. ", PLATFORM_DEFAULT),
        ("", "N/A", PLATFORM_DEFAULT),
        ("Five Stars", "", EMPTY),
        ("5 stars", "   ", EMPTY),
        ("", "", EMPTY),
        ("", "?????? !!!", EMPTY),
        ("", "？？？？", EMPTY),
    ],
)
def test_placeholders_are_recognised(summary, text, reason):
    assert placeholder_reason(summary, text) == reason


@pytest.mark.parametrize(
    "summary, text",
    [
        ("", "好"),
        ("", "great"),
        ("", "Great!"),
        ("", "非常好"),
        ("", "不错，物流很快"),
        ("Great foot rest", ""),  # the summary is the review
        ("", "The default tuning was fine, no complaints"),
        ("", "好评！系统很好用"),
        ("One Star", "It broke after a week."),
    ],
)
def test_genuine_reviews_are_not_placeholders(summary, text):
    assert placeholder_reason(summary, text) is None


def test_every_sample_placeholder_is_recognised():
    for language, fills in SAMPLE_PLACEHOLDERS.items():
        for summary, text in fills:
            assert placeholder_reason(summary, text) is not None, (language, summary, text)


def test_fingerprints_ignore_case_width_and_punctuation_and_skip_short_texts():
    assert normalise("Ｇｒｅａｔ， Strings!") == "greatstrings"
    assert fingerprint("Great strings, great tone!") == fingerprint("great strings great tone")
    assert fingerprint("Great strings, great tone!") != fingerprint("great strings, poor tone")
    assert fingerprint("不错") is None and fingerprint("x" * (TEMPLATE_MIN_CHARS - 1)) is None
    assert len(fingerprint("物流很快，包装完好") or b"") == 8


def test_the_template_threshold_is_a_count_and_a_share_of_the_shop():
    assert template_threshold(100, 10, 0.005) == 10  # a small shop: the count
    assert template_threshold(100_000, 10, 0.005) == 500  # a large one: the share
    assert template_threshold(2001, 10, 0.005) == 11  # rounded up
