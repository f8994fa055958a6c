"""The Chinese path through ingest and features, in both profiles: the synthetic
export (real online_shopping_10_cats texts, GB18030, Chinese column names, 0/1
labels, local times) through `portrait ingest reviews`' import, then a feature
build whose interest tags are Chinese aspects with their sentiment."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.helpers.data import TEST_KEY

pytestmark = pytest.mark.integration


def test_a_chinese_shop_export_loads_and_gets_chinese_tags(db, tmp_path, tiny_bert):
    from portrait.features.build import build_features
    from portrait.ingest import zh_sample
    from portrait.ingest.loader import ingest_file
    from portrait.settings import Settings

    settings, engine = db
    path = zh_sample.write_export(Settings().resolved_data_dir(), tmp_path / zh_sample.FILE_NAME, reviews=400)
    lines = path.read_bytes().decode("gb18030").count("\n") - 1
    _, counts = ingest_file(engine, "reviews", path, TEST_KEY, progress=False, spec=zh_sample.import_spec())
    assert counts.reconciles and counts.rejected == 0 and counts.loaded >= lines - 2  # a review may hold a newline
    with engine.connect() as conn:
        ratings = set(conn.execute(sa.text("SELECT DISTINCT rating FROM reviews")).scalars())
        languages = dict(conn.execute(sa.text("SELECT language, count(*) FROM reviews GROUP BY 1")).all())
    assert ratings == {1, 5}  # 0/1 labels on the declared 0-1 scale
    assert languages["zh"] >= 0.95 * counts.loaded

    build_features(engine, encoder_path=str(tiny_bert), progress=False)
    with engine.connect() as conn:
        tags = [t for t in conn.execute(sa.text("SELECT interest_tags FROM user_text_profile")).scalars() if t]
    words = [w.rsplit(" ", 1)[0] for t in tags for w in t.split(", ")]  # aspects, each with its sign
    assert len(words) > 20 and all(t.split(", ")[0].rsplit(" ", 1)[1] in "+-~" for t in tags)
    chinese = [w for w in words if re.fullmatch(r"[\u4e00-\u9fff]+", w)]
    assert len(chinese) > 0.8 * len(words) and all(len(w) >= 2 for w in chinese)  # words, not characters


def test_review_lengths_are_words_and_characters_and_migration_0006_backfills_them(db, tmp_path, tiny_bert):
    """English reviews count words, Chinese ones characters, each over its own reviews; the
    migration's backfill (down to 0005 and up again) gives what the feature build gives."""
    from portrait.features.build import build_features
    from portrait.ingest import zh_sample
    from portrait.ingest.loader import ingest_file
    from portrait.settings import Settings
    from portrait.store import migrate
    from tests.helpers.data import real_lines

    settings, engine = db
    path = zh_sample.write_export(Settings().resolved_data_dir(), tmp_path / zh_sample.FILE_NAME, reviews=200)
    ingest_file(engine, "reviews", path, TEST_KEY, progress=False, spec=zh_sample.import_spec())
    english = tmp_path / "reviews.json"
    english.write_bytes(b"".join(real_lines(200)))
    ingest_file(engine, "amazon-reviews", english, TEST_KEY, progress=False)
    build_features(engine, encoder_path=str(tiny_bert), progress=False)

    columns = "user_id, event_timestamp, review_words_mean, review_chars_mean_zh"
    with engine.connect() as conn:
        before = conn.execute(sa.text(f"SELECT {columns} FROM user_behavior ORDER BY 1, 2")).all()
        reviews = conn.execute(sa.text("SELECT user_id, language, text FROM reviews")).all()
    words: dict[str, list[int]] = {}
    chars: dict[str, list[int]] = {}
    for user, language, text in reviews:
        if language == "zh":
            chars.setdefault(user, []).append(len(text))
        else:
            words.setdefault(user, []).append(len(text.split()))
    assert len(chars) > 20 and len(words) > 20
    latest = {user: (w, c) for user, _, w, c in before}  # rows are in time order: the last one wins
    assert latest.keys() == words.keys() | chars.keys()
    for user, (got_words, got_chars) in latest.items():
        for got, lengths in ((got_words, words.get(user)), (got_chars, chars.get(user))):
            if lengths is None:
                assert got is None
            else:
                assert got == pytest.approx(sum(lengths) / len(lengths), rel=1e-5)

    migrate.downgrade(settings, "0005")
    migrate.upgrade(settings)
    with engine.connect() as conn:
        after = conn.execute(sa.text(f"SELECT {columns} FROM user_behavior ORDER BY 1, 2")).all()
    assert len(after) == len(before)
    for old, new in zip(before, after):
        assert old[:2] == new[:2]
        for got, want in zip(new[2:], old[2:]):
            assert (got is None) == (want is None)
            if want is not None:
                assert got == pytest.approx(want, rel=1e-5)
