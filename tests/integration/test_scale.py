"""What the scale work relies on, on small data: a synthetic shop ingests cleanly, and
identical review texts are embedded once (the content hash), in both profiles."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.helpers.data import SHARED_DATA, TEST_KEY
from tests.helpers.ingest import scalar

pytestmark = pytest.mark.integration


def test_a_synthetic_shop_ingests_and_its_repeated_texts_embed_once(db, tmp_path, tiny_bert, monkeypatch):
    from portrait.features import embed as embed_step
    from portrait.features.build import build_features
    from portrait.ingest.loader import ingest_file
    from portrait.ops import synth
    from portrait.text.encoder import Encoder

    settings, engine = db
    real = synth.load_real(SHARED_DATA)
    shop = synth.generate(real, tmp_path, users=300, items=150, reviews=2000, events=2800, seed=3, progress=False)
    _, reviews = ingest_file(engine, "amazon-reviews", shop.reviews_path, TEST_KEY, progress=False)
    _, events = ingest_file(engine, "events", shop.events_path, TEST_KEY, progress=False)
    assert reviews.reconciles and reviews.loaded == shop.reviews and reviews.rejected == 0
    assert events.reconciles and events.loaded == shop.events and events.rejected == 0

    embedded: list[int] = []

    class CountingEncoder(Encoder):  # the review embedding step's encoder (aspect grouping embeds aspects too)
        def embed(self, texts, **kw):
            embedded.append(len(texts))
            return super().embed(texts, **kw)

    monkeypatch.setattr(embed_step, "Encoder", CountingEncoder)
    build_features(engine, encoder_path=str(tiny_bert), progress=False)
    with engine.connect() as conn:
        rows, unique = conn.execute(sa.text("SELECT count(*), count(DISTINCT text_hash) FROM review_embeddings")).one()
        # every review with the same text has the same vector
        spread = conn.execute(
            sa.text("""SELECT count(*) FROM (SELECT text_hash FROM review_embeddings
                       GROUP BY text_hash HAVING count(DISTINCT embedding) > 1) s""")
        ).scalar()
    genuine = scalar(engine, "SELECT count(*) FROM reviews WHERE placeholder IS NULL")
    assert shop.reviews * 0.85 < genuine < shop.reviews  # synth writes some placeholders: never embedded
    assert rows == genuine and unique < 0.95 * rows  # texts drawn from 10,261 real ones repeat
    assert sum(embedded) == unique and spread == 0

    # a second shop's worth of the same texts: nothing new to embed
    more = synth.generate(real, tmp_path / "more", users=300, items=150, reviews=500, events=0, seed=4, progress=False)
    ingest_file(engine, "amazon-reviews", more.reviews_path, TEST_KEY, progress=False)
    embedded.clear()
    build_features(engine, encoder_path=str(tiny_bert), progress=False)
    with engine.connect() as conn:
        _, unique_after = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT text_hash) FROM review_embeddings")
        ).one()
    assert sum(embedded) == unique_after - unique < 500  # only texts never embedded before


def test_text_profiles_built_in_slices_of_users_and_items_equal_one_pass(db, tmp_path, tiny_bert, monkeypatch):
    from portrait.features import build as features
    from portrait.ingest.loader import ingest_file
    from portrait.ops import synth

    settings, engine = db
    shop = synth.generate(
        synth.load_real(SHARED_DATA), tmp_path, users=120, items=60, reviews=800, events=0, seed=5, progress=False
    )
    ingest_file(engine, "amazon-reviews", shop.reviews_path, TEST_KEY, progress=False)
    queries = [
        sa.text(
            "SELECT user_id, event_timestamp, user_embedding, share_positive, interest_tags FROM user_text_profile "
            "ORDER BY user_id, event_timestamp"
        ),
        sa.text(
            "SELECT item_id, event_timestamp, item_embedding, item_embedded_review_count FROM item_text_profile "
            "ORDER BY item_id, event_timestamp"
        ),
    ]

    def build(per_slice: int) -> list:
        monkeypatch.setattr(features, "TEXT_PROFILE_USERS_PER_SLICE", per_slice)
        monkeypatch.setattr(features, "TEXT_PROFILE_ITEMS_PER_SLICE", per_slice)
        with engine.begin() as conn:  # a full rebuild from the same embeddings
            conn.execute(sa.text("TRUNCATE user_text_profile, user_behavior, item_stats, item_text_profile"))
            conn.execute(sa.text("TRUNCATE feature_builds"))
        features.build_features(engine, encoder_path=str(tiny_bert), progress=False)
        with engine.connect() as conn:
            return [conn.execute(query).all() for query in queries]

    # The aspect groups are the shop's persistent state, kept across builds by design (a group's
    # head is the form first seen): built once, then both builds read the same groups.
    build(100_000)
    sliced, whole = build(7), build(100_000)
    assert len(sliced[0]) > 300 and len(sliced[1]) > 300 and sliced == whole
