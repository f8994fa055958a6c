"""Placeholder and template reviews: texts the shopper did not write.

Platforms fill in a text when the shopper gave stars and wrote nothing (JD's
"此用户未填写评价内容", Taobao's "评价方未及时做出评价,系统默认好评!", an English shop's
"No review text"). Such a review keeps its stars (rating and behaviour features
use it) but says nothing about the shopper: it is left out of sentiment training
and evaluation, embeddings, text profiles and tags.

The rule, in order (a reader can check each against the review):
1. `empty`: no letter or digit in the text, and the summary is empty or a
   star-count default ("Five Stars").
2. `platform default`: the normalised text is a known platform default
   (PLATFORM_DEFAULTS, or one of DEFAULT_PATTERNS).
3. `template`: the normalised text (at least TEMPLATE_MIN_CHARS letters) is
   written verbatim by many distinct users: at least `min_users` and at least
   `min_share` of the shop's reviewers (portrait.settings; `portrait ingest flag`
   re-applies it). Genuine short reviews ("好", "great") repeat naturally and are
   too short to count; a genuine longer text repeated by a handful of users is
   far below the share.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

EMPTY, PLATFORM_DEFAULT, TEMPLATE = "empty", "platform default", "template"
REASONS = (EMPTY, PLATFORM_DEFAULT, TEMPLATE)
TEMPLATE_MIN_CHARS = 6  # normalised letters/digits: shorter texts repeat genuinely ("不错", "great")

# Normalised (see normalise): NFKC, case-folded, letters and digits only.
PLATFORM_DEFAULTS = frozenset(
    {
        # JD.com, Taobao, Tmall, Pinduoduo, Suning
        "此用户未填写评价内容",
        "此用户未及时填写评价内容",
        "用户未填写评价内容",
        "用户未及时填写评价内容",
        "此用户没有填写评价",
        "此用户没有填写评论",
        "该用户未填写评价",
        "该用户未作评价",
        "该用户觉得商品较好",
        "该用户觉得商品非常好",
        "评价方未及时做出评价系统默认好评",
        "系统默认好评",
        "默认好评",
        "好评系统默认",
        "买家未及时评价系统默认好评",
        "用户未及时评价系统默认好评",
        "此用户未及时评价系统默认好评",
        "用户未评价",
        "未填写评价",
        "无评价内容",
        "无评价",
        # English shops, marketplaces, exports
        "noreviewtext",
        "noreviewtextprovided",
        "noreview",
        "nocomment",
        "nocomments",
        "notext",
        "ratingonly",
        "starratingonly",
        "thecustomerdidnotwriteareview",
        "customerdidnotleaveareview",
        "thisreviewhasnotext",
        "na",
        "none",
        "null",
        "nan",
    }
)
DEFAULT_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"^(此|该)?(用户|买家|顾客)(未|没有)(及时)?(填写|作出|做出)?(评价|评论)(内容)?$",
        r"系统默认(好评|评价)",
        r"^(评价方|买家|用户)未及时(做出|作出)?评价",
        r"^(no|without)(review|comment)(text|provided)?$",
    )
)
# Summaries that only restate the stars (Amazon generates "Five Stars" for a star-only review).
# What `portrait sample-export` and `portrait synth` write in place of a share of the texts,
# so that tests and the demo meet placeholders (summary, text) as real exports have them.
SAMPLE_PLACEHOLDERS = {
    "zh": (("", "此用户未填写评价内容"), ("", "此用户未及时填写评价内容"), ("", "评价方未及时做出评价,系统默认好评!")),
    "en": (("", "No review text"), ("Five Stars", ""), ("", "")),
}
SAMPLE_PLACEHOLDER_SHARE = 0.08
STAR_SUMMARIES = frozenset(
    {f"{n}star{'s' if n != 'one' else ''}" for n in ("one", "two", "three", "four", "five")}
    | {f"{n}stars" for n in "12345"}
    | {"1star"}
)


def normalise(text: str | None) -> str:
    """NFKC, case-folded, letters and digits only: what "the same text" means here."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return "".join(c for c in folded if unicodedata.category(c)[0] in "LN")


def is_platform_default(normalised: str) -> bool:
    return normalised in PLATFORM_DEFAULTS or any(p.search(normalised) for p in DEFAULT_PATTERNS)


def placeholder_reason(summary: str | None, text: str | None) -> str | None:
    """`empty` or `platform default` for one review (rules 1-2), else None. The
    corpus rule (3, `template`) needs the other reviews: see `fingerprint`."""
    body = normalise(text)
    if not body:
        head = normalise(summary)
        if not head or head in STAR_SUMMARIES:
            return EMPTY
        return PLATFORM_DEFAULT if is_platform_default(head) else None  # the summary is the review
    return PLATFORM_DEFAULT if is_platform_default(body) else None


def fingerprint(text: str | None) -> bytes | None:
    """The normalised text's hash (8 bytes), which the template rule counts by
    distinct users; None for texts too short to be a template."""
    body = normalise(text)
    if len(body) < TEMPLATE_MIN_CHARS:
        return None
    return hashlib.sha256(body.encode("utf-8")).digest()[:8]


def template_threshold(reviewers: int, min_users: int, min_share: float) -> int:
    """Distinct users a text needs to be a template in a shop with this many reviewers."""
    return max(min_users, int(min_share * reviewers + 0.999999))
