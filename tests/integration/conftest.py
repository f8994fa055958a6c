"""Fixtures of the integration tests (real PostgreSQL and Redis; the profile
fixtures come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.helpers.data import real_lines
from tests.helpers.featurestore import ingest_events, ingest_lines


@pytest.fixture
def built(db, tiny_bert):
    """400 real reviews, a few views/carts, features built with the tiny BERT."""
    from portrait.features.build import build_features

    settings, engine = db
    ingest_lines(settings, engine, real_lines(400), "first.json")
    ingest_events(
        settings,
        engine,
        "user_id,item_id,event_type,event_timestamp,quantity,amount\n"
        "A2IBPI20UZIR0U,1384719342,view,2014-03-01T10:00:00Z,,\n"
        "A2IBPI20UZIR0U,1384719342,cart,2014-03-01T10:05:00Z,1,\n",
    )
    result = build_features(engine, encoder_path=str(tiny_bert), progress=False)
    return settings, engine, result


@pytest.fixture
def tracked(built):
    """`built`, with MLflow tracking and the registry configured for the profile."""
    from registry import tracking

    settings, engine, _ = built
    tracking.configure(settings)
    return settings, engine
