"""Placeholder reviews end to end in both profiles: flagged at ingest (the platform
defaults the sample export inserts, templates across users), kept for their stars,
and never embedded, profiled, tagged or trained on; migration 0010's backfill and
`portrait ingest flag` give what ingest gave."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.helpers.data import TEST_KEY, real_lines

pytestmark = pytest.mark.integration


def _flags(engine) -> dict[int, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT review_id, placeholder FROM reviews")).all())


def test_a_shop_with_placeholders_flags_them_and_keeps_them_out_of_text_features(db, tmp_path, tiny_bert):
    from portrait.features.build import build_features
    from portrait.ingest import zh_sample
    from portrait.ingest.loader import ingest_file
    from portrait.settings import Settings
    from portrait.text.placeholders import SAMPLE_PLACEHOLDERS, normalise
    from training.sentiment.data import load_reviews

    settings, engine = db
    path = zh_sample.write_export(Settings().resolved_data_dir(), tmp_path / zh_sample.FILE_NAME, reviews=600)
    _, counts = ingest_file(engine, "reviews", path, TEST_KEY, progress=False, spec=zh_sample.import_spec())
    inserted = {text for _, text in SAMPLE_PLACEHOLDERS["zh"]}
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT review_id, text, rating, placeholder FROM reviews")).all()
    # the truth: what the export inserted, and texts with no letter at all (the rule's `empty`)
    truth = {r.review_id for r in rows if r.text in inserted or not normalise(r.text)}
    flagged = {r.review_id for r in rows if r.placeholder}
    assert len(truth) >= 30 and counts.placeholders == len(flagged)
    precision, recall = len(truth & flagged) / len(flagged), len(truth & flagged) / len(truth)
    assert precision >= 0.99 and recall >= 0.99, (precision, recall)
    assert {r.rating for r in rows if r.placeholder} == {1, 5}  # the stars are real: kept

    build_features(engine, encoder_path=str(tiny_bert), progress=False)
    with engine.connect() as conn:
        embedded = set(conn.execute(sa.text("SELECT review_id FROM review_embeddings")).scalars())
        tags = " ".join(t for t in conn.execute(sa.text("SELECT interest_tags FROM user_text_profile")).scalars() if t)
        counted = conn.execute(sa.text("SELECT count(*) FROM user_behavior")).scalar()
        only_placeholders = conn.execute(
            sa.text("""SELECT count(*) FROM (SELECT user_id FROM reviews GROUP BY user_id
                       HAVING bool_and(placeholder IS NOT NULL)) u
                       JOIN user_text_profile p USING (user_id)""")
        ).scalar()
    assert embedded and not embedded & flagged
    assert tags and not any(word in tags for word in ("填写", "默认", "评价内容", "未及时"))
    assert counted > 0 and only_placeholders == 0
    training = set(load_reviews(engine)["review_id"])
    assert training and not training & flagged and training | flagged == {r.review_id for r in rows}


def test_templates_count_distinct_users_and_a_flag_change_rebuilds_the_profile(db, tmp_path, tiny_bert):
    from portrait.features.build import build_features
    from portrait.ingest.loader import ingest_file

    settings, engine = db
    template = "Thank you for shopping with us, your feedback matters to our store team"
    genuine_repeat = "Strings sound bright and stay in tune for weeks"
    lines = []
    for n, line in enumerate(real_lines(300)):
        review = json.loads(line)
        if n < 14:  # 14 distinct users, the default threshold is 10
            review["reviewText"] = template
        elif n < 18:  # 4 users wrote the same genuine line: below the threshold
            review["reviewText"] = genuine_repeat
        lines.append(json.dumps(review) + "\n")
    path = tmp_path / "reviews.json"
    path.write_text("".join(lines[:7]))  # the first file: 7 users, not yet a template
    _, first = ingest_file(engine, "amazon-reviews", path, TEST_KEY, progress=False)
    assert first.placeholders == 0
    build_features(engine, encoder_path=str(tiny_bert), progress=False)
    with engine.connect() as conn:
        profiled = conn.execute(sa.text("SELECT count(DISTINCT user_id) FROM user_text_profile")).scalar()
    assert profiled == 7

    path.write_text("".join(lines[7:]))
    _, second = ingest_file(engine, "amazon-reviews", path, TEST_KEY, progress=False)
    with engine.connect() as conn:
        by_text = dict(
            conn.execute(
                sa.text(
                    "SELECT text, count(*) FILTER (WHERE placeholder = 'template') FROM reviews "
                    "WHERE text IN (:t, :g) GROUP BY text"
                ),
                {"t": template, "g": genuine_repeat},
            ).all()
        )
    assert by_text == {template: 14, genuine_repeat: 0}
    assert second.placeholders == 7  # the second file's own template reviews (the first file's are flagged too)

    build_features(engine, encoder_path=str(tiny_bert), progress=False)  # the flag change reaches the profiles
    with engine.connect() as conn:
        stale = conn.execute(
            sa.text("""SELECT count(*) FROM reviews r JOIN LATERAL (
                         SELECT embedded_review_count FROM user_text_profile p WHERE p.user_id = r.user_id
                         ORDER BY event_timestamp DESC LIMIT 1) p ON true
                       WHERE r.placeholder IS NOT NULL AND p.embedded_review_count > 0
                         AND NOT EXISTS (SELECT 1 FROM reviews o WHERE o.user_id = r.user_id AND o.placeholder IS NULL)""")
        ).scalar()
    assert stale == 0


def test_migration_0010_and_portrait_ingest_flag_backfill_what_ingest_flags(db, tmp_path):
    from portrait.ingest import zh_sample
    from portrait.ingest.flags import reflag_all
    from portrait.ingest.loader import ingest_file
    from portrait.settings import Settings
    from portrait.store import migrate

    settings, engine = db
    path = zh_sample.write_export(Settings().resolved_data_dir(), tmp_path / zh_sample.FILE_NAME, reviews=300)
    ingest_file(engine, "reviews", path, TEST_KEY, progress=False, spec=zh_sample.import_spec())
    at_ingest = _flags(engine)
    assert sum(1 for f in at_ingest.values() if f) >= 10

    migrate.downgrade(settings, "0009")
    migrate.upgrade(settings)
    assert _flags(engine) == at_ingest

    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE reviews SET placeholder = NULL, text_fingerprint = NULL"))
        counts = reflag_all(conn, settings)
    assert _flags(engine) == at_ingest
    assert sum(counts.values()) == sum(1 for f in at_ingest.values() if f)
