"""Portrait's PostgreSQL online store: Feast's own (same tables, same rows, same reads),
with one change: materialization writes by COPY instead of one INSERT ... ON CONFLICT
per (entity, feature). feature_store.yaml names it as the online store's type, so
`feast materialize` and `portrait features materialize` both take it; the values it
stores are byte-for-byte Feast's (tests/integration/test_materialization.py).

Feast's `_get_conn` asserts the store's type is "postgres"; this class repeats it
without that assert (the one private method it overrides). The private functions it
calls are resolved through portrait.featurestore.feast_private, which fails by name on a Feast upgrade."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Generator
from datetime import datetime
from typing import Any, Literal

from feast import FeatureView
from feast.infra.key_encoding_utils import get_list_val_str, serialize_entity_key
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.infra.online_stores.postgres_online_store import postgres as feast_pg
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from psycopg import sql
from psycopg_pool import ConnectionPool

from portrait.featurestore.feast_private import CONN_KWARGS, NAIVE_UTC, PG_CONNINFO, postgres_online_table, resolve

TYPE = "portrait.featurestore.online_stores.PortraitPostgreSQLOnlineStore"
POOL_TIMEOUT_S = 5.0  # longest wait for a connection (none free, or the server unreachable)


class PortraitPostgreSQLOnlineStoreConfig(feast_pg.PostgreSQLOnlineStoreConfig):
    type: Literal["portrait.featurestore.online_stores.PortraitPostgreSQLOnlineStore"] = TYPE  # type: ignore[assignment]


class PortraitPostgreSQLOnlineStore(feast_pg.PostgreSQLOnlineStore):
    # Feast's store keeps one connection per store object (conn_type singleton) and
    # flips its autocommit per call: under a threaded server two requests share one
    # transaction and the connection wedges (ProgrammingError ... INTRANS). This store
    # always draws from a psycopg pool: a connection belongs to one thread for one
    # call, is rolled back on error, and is checked and replaced when it broke.
    _pool_lock = threading.Lock()

    def _pool(self, config: RepoConfig) -> Any:
        with self._pool_lock:
            if self._conn_pool is None or self._conn_pool.closed:
                cfg = config.online_store

                def check(conn: Any) -> None:
                    # A dead server's connections never reach a caller. One broken
                    # connection means the server most likely dropped them all (a
                    # restart, a failover, an admin): sweep the idle ones at once, or
                    # the pool tries them one by one with a growing back-off (1, 2, 4 s)
                    # and a request times out after the third.
                    try:
                        ConnectionPool.check_connection(conn)
                    except Exception:
                        pool.check()
                        raise

                pool = ConnectionPool(
                    conninfo=resolve(PG_CONNINFO)(cfg),
                    kwargs=resolve(CONN_KWARGS)(cfg),
                    min_size=cfg.min_conn,
                    max_size=cfg.max_conn,
                    check=check,
                    timeout=POOL_TIMEOUT_S,  # a server that is down: a 503 in seconds, not a request's whole budget
                    open=False,
                )
                pool.open()
                self._conn_pool = pool
            return self._conn_pool

    @contextlib.contextmanager
    def _get_conn(self, config: RepoConfig, autocommit: bool = False) -> Generator[Any, Any, Any]:
        with self._pool(config).connection() as connection:  # commit on success, rollback on error
            connection.autocommit = autocommit
            yield connection

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """The rows Feast's online_write_batch writes, COPYed into a staging table and
        upserted in one statement. Rows for the same (entity, feature) keep the last one,
        as Feast's row-by-row upserts do."""
        table_name = postgres_online_table(config, table)
        with self._get_conn(config) as conn, conn.cursor() as cur:
            has_value_num = self._check_table_has_value_num(cur, table_name, config)
            compute_value_num = has_value_num  # as Feast: filled wherever the column exists
            columns = ["entity_key", "feature_name", "value", "value_text"]
            if has_value_num:
                columns.append("value_num")
            columns += ["vector_value", "event_ts", "created_ts"]
            rows: dict[tuple[bytes, str], tuple] = {}
            version = config.entity_key_serialization_version
            vector_enabled = config.online_store.vector_enabled
            naive_utc = resolve(NAIVE_UTC)
            for entity_key, values, timestamp, created_ts in data:
                key = serialize_entity_key(entity_key, entity_key_serialization_version=version)
                event_ts = naive_utc(timestamp)
                created = naive_utc(created_ts) if created_ts is not None else None
                for feature_name, val in values.items():
                    value_text, value_num = extract_text_and_num(val, compute_value_num)
                    row = [key, feature_name, val.SerializeToString(), value_text]
                    if has_value_num:
                        row.append(value_num)
                    row += [get_list_val_str(val) if vector_enabled else None, event_ts, created]
                    rows[(key, feature_name)] = tuple(row)
            column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            cur.execute(
                sql.SQL("CREATE TEMP TABLE portrait_stage (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
                    sql.Identifier(table_name)
                )
            )
            with cur.copy(sql.SQL("COPY portrait_stage ({}) FROM STDIN").format(column_list)) as copy:
                for staged in rows.values():
                    copy.write_row(staged)
            updates = sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                for c in columns
                if c not in ("entity_key", "feature_name")
            )
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} ({}) SELECT {} FROM portrait_stage "
                    "ON CONFLICT (entity_key, feature_name) DO UPDATE SET {}"
                ).format(sql.Identifier(table_name), column_list, column_list, updates)
            )
            conn.commit()
        if progress:
            progress(len(data))
