"""Aspect groups in PostgreSQL: the feature build stores each aspect it met with its
group's head (heads with their embedding), tags show heads only, and a later build (a
new AspectGroups) keeps the stored assignments, per encoder revision."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from portrait.features.aspect_groups import MARGIN, AspectGroups

pytestmark = pytest.mark.integration


def test_the_build_stores_groups_and_tags_name_their_heads(built):
    settings, engine, _ = built
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT aspect, canonical, embedding FROM aspect_groups")).all()
        tags = conn.execute(sa.text("SELECT interest_tags FROM user_text_profile WHERE interest_tags <> ''")).scalars()
        shown = {tag.rsplit(" ", 1)[0] for line in tags for tag in line.split(", ")}
    heads = {r.aspect for r in rows if r.aspect == r.canonical}
    assert len(rows) > 50 and heads  # 400 real reviews mention many aspects
    assert all((r.embedding is not None) == (r.aspect in heads) for r in rows)
    assert {r.canonical for r in rows} == heads  # every group is named by a head
    assert shown and shown <= heads


def test_a_later_build_keeps_the_stored_groups_of_its_encoder(db):
    settings, engine = db
    vectors = {"price": [1.0, 0.0], "cost": [0.99, 0.141], "screen": [0.0, 1.0]}
    pairs = (("en", "price", "screen", False),)  # the threshold: cos(price, screen) + MARGIN

    def embed(texts):
        return np.asarray([vectors[t] for t in texts], dtype=np.float32)

    def no_encoder():
        raise AssertionError("no new aspect: the encoder must not be loaded")

    with engine.begin() as conn:
        first = AspectGroups(conn, "rev-1", lambda: embed, pairs)
        assert first.merge([[("price", "positive")], [("screen", "negative")]]) == [
            [("price", "positive")],
            [("screen", "negative")],
        ]
    with engine.begin() as conn:  # a later build reads the heads back and loads no encoder for known aspects
        later = AspectGroups(conn, "rev-1", no_encoder, pairs)
        assert later.merge([[("screen", "positive")]]) == [[("screen", "positive")]]
    with engine.begin() as conn:
        later = AspectGroups(conn, "rev-1", lambda: embed, pairs)
        assert later.merge([[("cost", "negative"), ("screen", "positive")]]) == [
            [("price", "negative"), ("screen", "positive")]
        ]
        assert AspectGroups(conn, "rev-2", no_encoder, pairs).head_of == {}  # groups belong to one encoder
        stored = conn.execute(
            sa.text("SELECT cosine FROM aspect_groups WHERE aspect = 'cost' AND encoder_revision = 'rev-1'")
        ).scalar()
    assert stored == pytest.approx(0.99, abs=1e-3) and stored >= MARGIN
