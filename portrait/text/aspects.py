"""Aspects: what a review is about (the product's parts and attributes, the service),
each with the clause that mentions it, so that the clause, not the whole review, says
how the shopper feels about it ("安装 -, 制冷 +", "tuning stability +, price -").

Rules a reader can check:
- Clauses: a review split at sentence and clause punctuation and at contrast words
  ("but", "although", "但是", "不过"), where opinions about different aspects part.
- Chinese aspects: jieba's part-of-speech nouns (n, nz, vn, ng) of two characters or
  more, adjacent nouns joined into one compound (电池 + 续航 -> 电池续航), minus
  OPINION_ZH and the generic nouns of GENERIC_ZH; light verbs (LIGHT_VERBS_ZH: 是, 有,
  觉得, 收到, ...) end a run rather than join it; a few shop nouns jieba tags as names
  (师傅, 续航: COMMERCE_NOUNS_ZH) count as nouns.
- English aspects: the nouns of noun phrases, found without a tagger model (none
  installs from PyPI without a download at run time): the words after a determiner or
  possessive ("the strings", "my tuner", "its battery life"), opinion adjectives and
  intensifiers skipped, up to two words, minus stop words, opinion words (OPINION_EN)
  and generic nouns. Plurals fold into the singular ("strings" -> "string").
Sentiment words are never aspects: the opinion lists are applied after extraction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from portrait.text.language import CHINESE_STOP_WORDS, has_han

CLAUSE_SPLIT = re.compile(
    r"[,.;:!?，。；：！？、~～\n]+|\s+(?:but|although|though|however|while|whereas|except)\s+"
    r"|但是|不过|可是|然而|就是|只是",
    re.IGNORECASE,
)
DETERMINERS = frozenset(
    [
        "the",
        "this",
        "that",
        "these",
        "those",
        "my",
        "your",
        "his",
        "her",
        "its",
        "our",
        "their",
        "a",
        "an",
        "one",
        "another",
        "every",
        "each",
        "any",
        "some",
        "no",
    ]
)
OPINION_EN = frozenset(
    [
        "good",
        "great",
        "nice",
        "best",
        "better",
        "excellent",
        "awesome",
        "amazing",
        "fantastic",
        "perfect",
        "fine",
        "solid",
        "decent",
        "superb",
        "wonderful",
        "cheap",
        "expensive",
        "pricey",
        "bad",
        "worse",
        "worst",
        "poor",
        "terrible",
        "horrible",
        "awful",
        "junk",
        "garbage",
        "crap",
        "useless",
        "flimsy",
        "sturdy",
        "happy",
        "pleased",
        "satisfied",
        "disappointed",
        "unhappy",
        "love",
        "loved",
        "hate",
        "hated",
        "like",
        "liked",
        "recommend",
        "recommended",
        "easy",
        "hard",
        "difficult",
        "simple",
        "quick",
        "fast",
        "slow",
        "loud",
        "quiet",
        "bright",
        "warm",
        "clear",
        "clean",
        "noisy",
        "smooth",
        "rough",
        "little",
        "big",
        "small",
        "large",
        "huge",
        "tiny",
        "long",
        "short",
        "heavy",
        "light",
        "new",
        "old",
        "first",
        "last",
        "other",
        "same",
        "only",
        "real",
        "whole",
        "very",
        "really",
        "pretty",
        "quite",
        "too",
        "so",
        "extremely",
        "super",
        "absolutely",
        "totally",
        "highly",
        "well",
        "much",
        "more",
        "most",
        "less",
        "least",
        "thanks",
        "thank",
        "star",
        "stars",
        "five",
        "four",
        "three",
        "two",
        "one",
        "lot",
        "bit",
        "thing",
        "things",
        "stuff",
        "item",
        "product",
        "way",
        "time",
        "times",
        "high",
        "low",
        "cool",
        "hot",
        "cold",
        "sharp",
        "soft",
        "dull",
        "nasty",
        "lovely",
        "beautiful",
        "gorgeous",
        "ugly",
        "sweet",
        "rich",
        "thin",
        "thick",
        "tight",
        "loose",
        "cheaper",
        "stronger",
        "weaker",
        "louder",
        "nicer",
        "easier",
        "harder",
    ]
)
# after a determiner these end the phrase ("a bit high", "a lot of"): quantities and generic nouns
PHRASE_STOPS = frozenset(
    [
        "bit",
        "lot",
        "lots",
        "couple",
        "few",
        "thing",
        "things",
        "stuff",
        "item",
        "items",
        "product",
        "products",
        "way",
        "time",
        "times",
        "problem",
        "problems",
        "issue",
        "issues",
        "complaint",
        "complaints",
        "review",
        "reviews",
        "money",
        "purchase",
        "star",
        "stars",
        "day",
        "days",
        "week",
        "weeks",
        "month",
        "months",
        "year",
        "years",
        "people",
        "person",
        "guy",
        "guys",
        "end",
        "kind",
        "sort",
        "one",
        "ones",
    ]
)
# second words that make a compound with the noun before them ("sound quality", "battery life")
COMPOUND_HEADS = frozenset(
    [
        "quality",
        "life",
        "stability",
        "size",
        "level",
        "case",
        "cable",
        "strap",
        "stand",
        "pedal",
        "string",
        "head",
        "neck",
        "body",
        "cover",
        "button",
        "buttons",
        "volume",
        "tone",
        "output",
        "input",
        "jack",
        "plug",
        "cord",
        "power",
        "supply",
        "design",
        "build",
        "finish",
        "fit",
        "service",
        "shipping",
        "packaging",
        "delivery",
        "support",
        "price",
    ]
)
OPINION_ZH = frozenset(
    [
        "好评",
        "差评",
        "中评",
        "满意",
        "失望",
        "喜欢",
        "推荐",
        "不错",
        "垃圾",
        "差劲",
        "一般",
        "太慢",
        "很快",
        "超快",
        "划算",
        "实惠",
        "便宜",
        "太贵",
        "问题",
        "毛病",
        "感觉",
        "东西",
        "宝贝",
        "商品",
        "产品",
        "评价",
        "内容",
        "评价内容",
        "用户",
        "买家",
        "卖家",
        "时候",
        "样子",
        "地方",
        "事情",
        "朋友",
        "家人",
        "大家",
        "一次",
        "以后",
        "之前",
        "第一次",
        "东东",
        "填写",
        "默认",
        "专业",
        "质量好",
        "性价比高",
    ]
)
GENERIC_ZH = frozenset(
    ["京东", "淘宝", "天猫", "店家", "客户", "小时", "天后", "时间", "今天", "明天", "昨天", "价格便宜"]
)
# Verbs that carry no aspect ("酒店是", "觉得价格", "收到货" are not aspects): they end a
# noun run instead of joining it, unlike 配送 in 物流配送
LIGHT_VERBS_ZH = frozenset(
    [
        "是",
        "有",
        "没有",
        "说",
        "买",
        "到",
        "去",
        "来",
        "让",
        "给",
        "送",
        "看",
        "看到",
        "用",
        "要",
        "会",
        "能",
        "想",
        "找",
        "问",
        "叫",
        "算",
        "算是",
        "觉得",
        "觉",
        "感觉",
        "发现",
        "知道",
        "收到",
        "拿到",
        "希望",
        "建议",
        "包括",
        "存在",
        "真是",
        "有点",
        "有些",
        "一点",
    ]
)
# Nouns of shops that jieba's dictionary tags as names (nr) or idioms (l)
COMMERCE_NOUNS_ZH = frozenset(["续航", "师傅", "售后", "售后服务", "快递员", "快递小哥", "小哥"])
_OUT_OF_RUN_ZH = OPINION_ZH | LIGHT_VERBS_ZH
ASPECTS_PER_USER = 5
_WORD = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")
_NOUN_FLAGS = ("n", "nz", "vn", "ng")


@dataclass(frozen=True)
class Mention:
    aspect: str
    clause: str


def clauses(text: str) -> list[str]:
    return [c.strip() for c in CLAUSE_SPLIT.split(text or "") if c and c.strip()]


def clause_mentioning(text: str, term: str) -> str:
    """The first clause that mentions the term (the whole text when none does alone)."""
    found = [c for c in clauses(text) if term.lower() in c.lower()]
    return found[0] if found else text


def _singular(word: str) -> str:
    word = word.removesuffix("'s").rstrip("'")  # possessives: "the amp's input" -> amp
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _english_aspects(clause: str) -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = _WORD.findall(clause.lower())
    found = []
    for i, word in enumerate(words):
        if word not in DETERMINERS:
            continue
        rest = words[i + 1 : i + 6]
        while rest and (rest[0] in OPINION_EN or rest[0].endswith("ly")):  # "the really great strings"
            rest = rest[1:]
        if not rest:
            continue
        noun = rest[0]
        if noun in ENGLISH_STOP_WORDS or noun in DETERMINERS or noun in PHRASE_STOPS or len(noun) < 3:
            continue
        phrase = _singular(noun)
        if len(rest) > 1 and rest[1] in COMPOUND_HEADS:
            phrase += " " + _singular(rest[1])
        found.append(phrase)
    return found


def _chinese_aspects(clause: str) -> list[str]:
    """Runs of nouns (a verb may lead or join them: 安装师傅, 电池续航), opinion words stripped."""
    from portrait.text.language import jieba_posseg

    found: list[str] = []
    run: list[tuple[str, str]] = []
    for word, flag in [*jieba_posseg(clause), ("", "x")]:
        flag = "n" if word in COMMERCE_NOUNS_ZH else flag
        if (flag in _NOUN_FLAGS or flag == "v") and word.strip() and word not in _OUT_OF_RUN_ZH:
            run.append((word, flag))
            continue
        if any(f in _NOUN_FLAGS for _, f in run):
            while run and run[-1][1] == "v" and len(run) > 1 and run[-2][1] == "v":  # trailing verbs are actions
                run.pop()
            aspect = "".join(w for w, _ in run)
            aspect = aspect if len(aspect) <= 6 else "".join(w for w, _ in run[-2:])  # a long run: its head
            if len(aspect) >= 2 and aspect not in OPINION_ZH | GENERIC_ZH and aspect not in CHINESE_STOP_WORDS:
                found.append(aspect)
        run = []
    return found


def mentions(text: str) -> list[Mention]:
    """Each aspect a review mentions, with its clause (an aspect once per clause)."""
    out = []
    for clause in clauses(text):
        found = _chinese_aspects(clause) if has_han(clause) else _english_aspects(clause)
        out += [Mention(aspect, clause) for aspect in dict.fromkeys(found)]
    return out


SIGNS = {"positive": 1, "neutral": 0, "negative": -1}  # a clause's label as a score
