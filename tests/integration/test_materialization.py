"""Portrait's materialization (the latest row per entity pulled in the offline store,
rows COPYed into the PostgreSQL online store) stores exactly what stock Feast stores:
the same online rows, byte for byte, and the same Redis hashes, in both profiles."""

from __future__ import annotations

import pytest

from tests.helpers.featurestore import VIEWS, drop_database, feast_database, online_rows

pytestmark = pytest.mark.integration


def test_postgres_online_rows_equal_stock_feasts(built):
    from portrait.featurestore import repo as featurestore

    settings, engine, _ = built
    ours, ours_db = feast_database(settings)
    stock, stock_db = feast_database(settings)
    try:
        for overrides, is_stock in ((ours, False), (stock, True)):
            featurestore.apply(settings, overrides)
            featurestore.materialize(settings, full=True, overrides=overrides, stock=is_stock)
        config = featurestore.repo_config(settings, ours)
        assert type(config.online_store).__name__ == "PortraitPostgreSQLOnlineStoreConfig"
        got, want = online_rows(settings, ours_db), online_rows(settings, stock_db)
        for view in VIEWS:
            assert len(want[view]) > 50 and got[view] == want[view], view

        # a second materialization over the same rows (upserts) changes nothing
        featurestore.materialize(settings, full=True, overrides=ours)
        assert online_rows(settings, ours_db) == want
    finally:
        drop_database(settings, ours_db)
        drop_database(settings, stock_db)


def test_redis_hashes_equal_stock_feasts(built):
    import redis

    from portrait.featurestore import repo as featurestore
    from tests.helpers.databases import require_external

    settings, engine, _ = built
    url = require_external("PORTRAIT_TEST_REDIS_URL")
    stock_url = url.rsplit("/", 1)[0] + "/13"  # a second test database
    hashes = {}
    names = []
    try:
        for redis_url, is_stock in ((url, False), (stock_url, True)):
            client = redis.Redis.from_url(redis_url)
            client.flushdb()
            overrides, name = feast_database(settings)
            names.append(name)
            s = settings.model_copy(update={"redis_url": redis_url})
            featurestore.apply(s, overrides)
            featurestore.materialize(s, full=True, overrides=overrides, stock=is_stock)
            hashes[is_stock] = {key: client.hgetall(key) for key in client.scan_iter(count=1000)}
        assert len(hashes[True]) > 100 and hashes[False] == hashes[True]
    finally:
        for name in names:
            drop_database(settings, name)
        redis.Redis.from_url(stock_url).flushdb()
