"""The language of a review and its words: per-review language detection (lingua,
restricted to the languages a deployment expects) and the terms interest tags are
made of (jieba words for Chinese, today's letter words for English)."""

from __future__ import annotations

import functools
import logging
import re

# Languages a review may be detected as (ISO 639-1); lingua compares only these,
# which keeps it fast (~30 us a review) and avoids confusing close relatives.
LANGUAGES = ("en", "zh")
_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

# Chinese function words and review boilerplate: frequent, and say nothing of a user's interests.
CHINESE_STOP_WORDS = frozenset(
    [
        "的",
        "了",
        "是",
        "我",
        "你",
        "他",
        "她",
        "它",
        "们",
        "也",
        "很",
        "都",
        "就",
        "还",
        "在",
        "有",
        "和",
        "与",
        "及",
        "或",
        "这",
        "那",
        "这个",
        "那个",
        "这些",
        "那些",
        "一个",
        "一些",
        "一下",
        "没有",
        "没",
        "不",
        "不是",
        "我们",
        "你们",
        "他们",
        "自己",
        "但是",
        "但",
        "因为",
        "所以",
        "而且",
        "然后",
        "如果",
        "虽然",
        "就是",
        "还是",
        "可以",
        "已经",
        "非常",
        "比较",
        "特别",
        "真的",
        "感觉",
        "觉得",
        "东西",
        "什么",
        "怎么",
        "这么",
        "那么",
        "还有",
        "一样",
        "一直",
        "一次",
        "一点",
        "有点",
        "时候",
        "现在",
        "之前",
        "以后",
        "之后",
        "其他",
        "而",
        "又",
        "被",
        "把",
        "给",
        "让",
        "从",
        "到",
        "对",
        "为",
        "吧",
        "吗",
        "呢",
        "啊",
        "呀",
        "哦",
        "嗯",
        "哈",
        "哈哈",
        "啦",
        "个",
        "说",
        "看",
        "用",
        "买",
        "要",
        "会",
        "能",
        "好",
        "太",
        "更",
        "最",
        "再",
        "才",
        "只",
        "多",
        "少",
        "大",
        "小",
        "上",
        "下",
        "里",
        "中",
        "后",
        "前",
        "等",
        "等等",
        "以及",
        "不过",
        "另外",
        "总之",
        "反正",
        "还好",
        "一般",
        "挺",
        "蛮",
        "超",
        "超级",
    ]
)


@functools.cache
def _detector(codes: tuple[str, ...]):
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_iso_codes_639_1(*(getattr(IsoCode639_1, c.upper()) for c in codes)).build()


def detect_language(text: str, languages: tuple[str, ...] = LANGUAGES) -> str | None:
    """ISO 639-1 code of the text's language among `languages`; None without letters."""
    if not any(c.isalpha() for c in text):
        return None
    found = _detector(tuple(sorted(languages))).detect_language_of(text)
    return found.iso_code_639_1.name.lower() if found is not None else None


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)  # it announces building its dictionary on stderr
    return jieba


def jieba_words(text: str) -> list[str]:
    """Every word jieba finds (punctuation and single characters included), for models."""
    return [w for w in _jieba().lcut(text) if w.strip()]


def has_han(text: str) -> bool:
    return _HAN_RE.search(text) is not None


def jieba_posseg(text: str) -> list[tuple[str, str]]:
    """(word, part-of-speech flag) as jieba's tagger gives them (n noun, v verb, a adjective, ...)."""
    import jieba.posseg

    _jieba()  # initialised quietly, once
    return [(p.word, p.flag) for p in jieba.posseg.lcut(text)]
