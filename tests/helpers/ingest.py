"""Ingesting into a test database and reading one value back."""

from __future__ import annotations

import sqlalchemy as sa

from tests.helpers.data import TEST_KEY


def ingest_path(db, source, path, batch_size=500):
    from portrait.ingest.loader import ingest_file

    settings, engine = db
    return ingest_file(engine, source, path, TEST_KEY, batch_size=batch_size, progress=False)


def scalar(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()
