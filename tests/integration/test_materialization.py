"""Portrait's materialization (the latest row per entity pulled in the offline store,
rows COPYed into the PostgreSQL online store) stores exactly what stock Feast stores:
the same online rows, byte for byte, and the same Redis hashes, in both profiles."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.integration.test_feature_store import built  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration
VIEWS = ("user_behavior", "user_text_profile", "item_stats", "item_text_profile")


def _feast_database(settings) -> tuple[dict, str]:
    from portrait.store import database

    name = f"portrait_test_feast_{uuid.uuid4().hex[:8]}"
    admin = database.server_url(settings)
    database.create_database(admin, name)
    overrides = {
        "PORTRAIT_FEAST_DATABASE": name,
        "PORTRAIT_FEAST_REGISTRY_URL": admin.set(database=name).render_as_string(hide_password=False),
    }
    return overrides, name


def _drop(settings, name: str) -> None:
    from portrait.store import database

    engine = sa.create_engine(database.server_url(settings), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def _online_rows(settings, name: str) -> dict[str, list]:
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


def test_postgres_online_rows_equal_stock_feasts(built):  # noqa: F811
    from portrait.featurestore import repo as featurestore

    settings, engine, _ = built
    ours, ours_db = _feast_database(settings)
    stock, stock_db = _feast_database(settings)
    try:
        for overrides, is_stock in ((ours, False), (stock, True)):
            featurestore.apply(settings, overrides)
            featurestore.materialize(settings, full=True, overrides=overrides, stock=is_stock)
        config = featurestore.repo_config(settings, ours)
        assert type(config.online_store).__name__ == "PortraitPostgreSQLOnlineStoreConfig"
        got, want = _online_rows(settings, ours_db), _online_rows(settings, stock_db)
        for view in VIEWS:
            assert len(want[view]) > 50 and got[view] == want[view], view

        # a second materialization over the same rows (upserts) changes nothing
        featurestore.materialize(settings, full=True, overrides=ours)
        assert _online_rows(settings, ours_db) == want
    finally:
        _drop(settings, ours_db)
        _drop(settings, stock_db)


def test_redis_hashes_equal_stock_feasts(built):  # noqa: F811
    import redis

    from portrait.featurestore import repo as featurestore
    from tests.conftest import require_external

    settings, engine, _ = built
    url = require_external("PORTRAIT_TEST_REDIS_URL")
    stock_url = url.rsplit("/", 1)[0] + "/13"  # a second test database
    hashes = {}
    names = []
    try:
        for redis_url, is_stock in ((url, False), (stock_url, True)):
            client = redis.Redis.from_url(redis_url)
            client.flushdb()
            overrides, name = _feast_database(settings)
            names.append(name)
            s = settings.model_copy(update={"redis_url": redis_url})
            featurestore.apply(s, overrides)
            featurestore.materialize(s, full=True, overrides=overrides, stock=is_stock)
            hashes[is_stock] = {key: client.hgetall(key) for key in client.scan_iter(count=1000)}
        assert len(hashes[True]) > 100 and hashes[False] == hashes[True]
    finally:
        for name in names:
            _drop(settings, name)
        redis.Redis.from_url(stock_url).flushdb()
