"""Feast in tests: a FeatureStore on either online store, scratch Feast databases and their online rows, ingest of small fixtures."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from tests.helpers.data import TEST_KEY


def ingest_lines(settings, engine, lines, name):
    from portrait.ingest.loader import ingest_file

    path = settings.state_dir / name
    path.write_bytes(b"".join(lines))
    return ingest_file(engine, "amazon-reviews", path, TEST_KEY, progress=False)[1]


def ingest_events(settings, engine, text):
    from portrait.ingest.loader import ingest_file

    path = settings.state_dir / "events.csv"
    path.write_text(text)
    return ingest_file(engine, "events", path, TEST_KEY, progress=False)[1]


def feature_store(settings, online: str):
    from portrait.featurestore import repo as featurestore
    from tests.helpers.databases import require_external

    if online == "redis":
        import redis

        url = require_external("PORTRAIT_TEST_REDIS_URL")
        redis.Redis.from_url(url).flushdb()  # the test database only (make test uses db 15)
        settings = settings.model_copy(update={"redis_url": url})
    featurestore.apply(settings)
    return settings, featurestore.feature_store(settings)


VIEWS = ("user_behavior", "user_text_profile", "item_stats", "item_text_profile")


def feast_database(settings) -> tuple[dict, str]:
    from portrait.store import database

    name = f"portrait_test_feast_{uuid.uuid4().hex[:8]}"
    admin = database.server_url(settings)
    database.create_database(admin, name)
    overrides = {
        "PORTRAIT_FEAST_DATABASE": name,
        "PORTRAIT_FEAST_REGISTRY_URL": admin.set(database=name).render_as_string(hide_password=False),
    }
    return overrides, name


def drop_database(settings, name: str) -> None:
    from portrait.store import database

    engine = sa.create_engine(database.server_url(settings), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def online_rows(settings, name: str) -> dict[str, list]:
    from portrait.store import database

    engine = sa.create_engine(database.server_url(settings, name))
    try:
        with engine.connect() as conn:
            return {
                view: conn.execute(
                    sa.text(
                        "SELECT entity_key, feature_name, value, value_text, vector_value, event_ts, created_ts "
                        f"FROM portrait_{view} ORDER BY entity_key, feature_name"
                    )
                ).all()
                for view in VIEWS
            }
    finally:
        engine.dispose()
