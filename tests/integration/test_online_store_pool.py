"""The PostgreSQL online store's connection pool on a real server: every connection
it holds killed at once (a restart, a failover, an admin) costs the next caller about
a second, never a timeout, and concurrent callers each get their own connection."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
import types
import uuid

import pytest
import sqlalchemy as sa

from tests.helpers.databases import require_external

pytestmark = pytest.mark.integration
HELD = 6  # more dead connections than the pool's back-off (1 + 2 + 4 s > 5 s) would survive one by one


@pytest.fixture()
def store_and_config():
    from portrait.featurestore.online_stores import PortraitPostgreSQLOnlineStore, PortraitPostgreSQLOnlineStoreConfig
    from portrait.store.database import DRIVER, create_database

    admin = sa.engine.make_url(require_external("PORTRAIT_TEST_DATABASE_URL")).set(drivername=DRIVER)
    name = f"portrait_test_pool_{uuid.uuid4().hex[:8]}"
    create_database(admin, name)
    online = PortraitPostgreSQLOnlineStoreConfig(
        host=admin.host or "127.0.0.1",
        port=admin.port or 5432,
        database=name,
        user=admin.username or "postgres",
        password=admin.password or "",
        sslmode=str(admin.query.get("sslmode") or "prefer"),
        min_conn=1,
        max_conn=HELD + 2,
    )
    store = PortraitPostgreSQLOnlineStore()
    yield store, types.SimpleNamespace(online_store=online), admin, name
    if store._conn_pool is not None:
        store._conn_pool.close()
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def _hold_connections_at_once(store, config, n: int) -> set[int]:
    """n callers inside _get_conn together: the pool grows to n; returns their backend pids."""
    barrier = threading.Barrier(n)

    def call(_: int) -> int:
        with store._get_conn(config) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            barrier.wait(timeout=10)
            return pid

    with cf.ThreadPoolExecutor(n) as pool:
        pids = set(pool.map(call, range(n)))  # a caller's error is raised here
    return pids


def test_concurrent_callers_get_distinct_connections_and_a_killed_pool_recovers_at_once(store_and_config):
    store, config, admin, name = store_and_config
    assert len(_hold_connections_at_once(store, config, HELD)) == HELD  # no connection shared by two threads

    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        killed = conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"), {"db": name}
        ).all()
    engine.dispose()
    assert len(killed) >= HELD

    started = time.monotonic()
    with store._get_conn(config) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    first = time.monotonic() - started
    assert first < 3.0, f"first call after the kill took {first:.1f} s"  # one back-off step, not a timeout
    for _ in range(10):
        with store._get_conn(config) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
