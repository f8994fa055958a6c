"""The Chinese path through ingest and features, in both profiles: the synthetic
export (real online_shopping_10_cats texts, GB18030, Chinese column names, 0/1
labels, local times) through `portrait ingest reviews`' import, then a feature
build whose interest tags are Chinese words."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.conftest import TEST_KEY

pytestmark = pytest.mark.integration


def test_a_chinese_shop_export_loads_and_gets_chinese_tags(db, tmp_path, tiny_bert):
    from portrait import zh_sample
    from portrait.features import build_features
    from portrait.imports import REVIEW_FIELDS, ImportSpec, parse_mapping
    from portrait.ingest import ingest_file
    from portrait.settings import Settings

    settings, engine = db
    path = zh_sample.write_export(Settings().resolved_data_dir(), tmp_path / zh_sample.FILE_NAME, reviews=400)
    lines = path.read_bytes().decode("gb18030").count("\n") - 1
    options = dict(zip(zh_sample.OPTIONS[::2], zh_sample.OPTIONS[1::2]))
    spec = ImportSpec(
        columns=parse_mapping(zh_sample.MAPPING, REVIEW_FIELDS),
        time_format=options["--time-format"],
        timezone=options["--timezone"],
        rating_scale=(0, 1),
    )
    _, counts = ingest_file(engine, "reviews", path, TEST_KEY, progress=False, spec=spec)
    assert counts.reconciles and counts.rejected == 0 and counts.loaded >= lines - 2  # a review may hold a newline
    with engine.connect() as conn:
        ratings = set(conn.execute(sa.text("SELECT DISTINCT rating FROM reviews")).scalars())
        languages = dict(conn.execute(sa.text("SELECT language, count(*) FROM reviews GROUP BY 1")).all())
    assert ratings == {1, 5}  # 0/1 labels on the declared 0-1 scale
    assert languages["zh"] >= 0.95 * counts.loaded

    build_features(engine, encoder_path=str(tiny_bert), progress=False)
    with engine.connect() as conn:
        tags = [t for t in conn.execute(sa.text("SELECT interest_tags FROM user_text_profile")).scalars() if t]
    words = [w for t in tags for w in t.split(", ")]
    assert len(words) > 20
    chinese = [w for w in words if re.fullmatch(r"[\u4e00-\u9fff]+", w)]
    assert len(chinese) > 0.8 * len(words) and all(len(w) >= 2 for w in chinese)  # words, not characters
