"""Interest tags: the TF-IDF vocabulary over the review corpus (stored, refitted as the corpus grows) and each user's running top terms."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import sqlalchemy as sa

from portrait.store.sql import frame
from portrait.text.encoder import review_text
from portrait.text.language import tag_terms

TAG_COUNT = 5


def fit_tag_vocabulary(texts: list[str]):
    """TF-IDF over the review corpus: what makes a user's words characteristic.
    None when the corpus has no usable terms (then users get no tags)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    # Terms in more than 2% of reviews are too common to characterize anyone; small
    # corpora (tests, a new shop) keep every term that is not in most documents.

    vectorizer = TfidfVectorizer(
        analyzer=tag_terms,  # words, not characters: jieba for Chinese, letter words for English
        min_df=3 if n >= 1000 else 1,
        max_df=max(0.02, min(1.0, 10 / max(n, 1))),
        max_features=20_000,
        sublinear_tf=True,
    )
    try:
        return vectorizer.fit(texts)
    except ValueError:  # empty vocabulary
        return None


VOCABULARY_REFIT_GROWTH = 0.10  # refit the tag vocabulary once the corpus has grown by this much


def tag_vocabulary(conn, as_of: datetime):
    """The stored tag vocabulary while the corpus has grown by less than
    VOCABULARY_REFIT_GROWTH since it was fitted (IDF weights barely move: an incremental
    build then reads no other review's text); else fitted on every review and stored.
    `portrait forget` drops the stored one, so no erased review's terms outlive it."""

    reviews = conn.execute(
        sa.text("SELECT count(*) FROM reviews WHERE event_timestamp <= :a AND placeholder IS NULL"), {"a": as_of}
    ).scalar()
    stored = conn.execute(
        sa.text("SELECT reviews, terms, idf FROM tag_vocabulary ORDER BY vocabulary_id DESC LIMIT 1")
    ).first()
    if stored is not None and stored.reviews <= reviews <= stored.reviews * (1 + VOCABULARY_REFIT_GROWTH):
        return restore_tag_vocabulary(list(stored.terms), list(stored.idf))
    texts = frame(
        conn, "SELECT summary, text FROM reviews WHERE event_timestamp <= :as_of AND placeholder IS NULL", as_of=as_of
    )
    vectorizer = fit_tag_vocabulary([review_text(s, t) for s, t in zip(texts["summary"], texts["text"])])
    terms = vectorizer.get_feature_names_out().tolist() if vectorizer else []
    conn.execute(
        sa.text("INSERT INTO tag_vocabulary (reviews, terms, idf) VALUES (:n, :t, :i)"),
        {"n": reviews, "t": terms, "i": [float(v) for v in vectorizer.idf_] if vectorizer else []},
    )
    return vectorizer


def restore_tag_vocabulary(terms: list[str], idf: list[float]):
    """fit_tag_vocabulary's vectorizer from its terms and IDF weights (None without terms)."""
    if not terms:
        return None
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer=tag_terms, vocabulary=terms, sublinear_tf=True)
    vectorizer.idf_ = np.asarray(idf, dtype=np.float64)
    return vectorizer


def running_tags(tfidf, groups: np.ndarray, terms: np.ndarray) -> list[str]:
    tags: list[str] = []
    acc = None
    for i in range(tfidf.shape[0]):
        row = tfidf.getrow(i)
        acc = row if i == 0 or groups[i] != groups[i - 1] else acc + row
        top = acc.indices[np.argsort(-acc.data, kind="stable")[:TAG_COUNT]]
        tags.append(", ".join(terms[top]))
    return tags
