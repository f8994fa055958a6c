"""Import shim: the logged Chinese TF-IDF baselines of earlier runs name
`portrait.language.jieba_words` among their skops trusted types. The code lives
in portrait.text.language; nothing of Portrait's imports this module."""

from portrait.text.language import jieba_words

__all__ = ["jieba_words"]
