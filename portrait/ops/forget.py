"""The right to be forgotten: erase one user from raw tables, feature tables,
rejected lines and the online store; recompute the aggregates of the items they
reviewed without them; leave a tombstone (the pseudonym) so that no later ingest
or POST /reviews brings them back; and keep an audit row that holds no id.

MLflow datasets of past training runs hold review texts and labels without user
ids (see docs/guides/operations.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from portrait.featurestore.feast_private import postgres_online_table, redis_key
from portrait.privacy.pseudonyms import pseudonymize, unseal

USER_VIEWS = ("user_behavior", "user_text_profile")
ITEM_VIEWS = ("item_stats", "item_text_profile")


@dataclass
class ForgetReport:
    rows_deleted: dict[str, int]
    online_store: str

    @property
    def found(self) -> bool:
        return any(self.rows_deleted.values())


def erase_offline(conn, pseudonym: str, raw_id: str, key: bytes) -> tuple[dict[str, int], list[str]]:
    """Delete every row of the user (reviews cascade to their embeddings), leave the
    tombstone and recompute the user's items without them. Returns (rows deleted
    per table, the items recomputed)."""
    from portrait.features.build import rebuild_items

    items = list(
        conn.execute(sa.text("SELECT DISTINCT item_id FROM reviews WHERE user_id = :u"), {"u": pseudonym}).scalars()
    )
    deleted: dict[str, int] = {}
    for table in ("review_embeddings", "user_behavior", "user_text_profile", "events", "reviews", "request_log"):
        deleted[table] = conn.execute(sa.text(f"DELETE FROM {table} WHERE user_id = :u"), {"u": pseudonym}).rowcount
    deleted["ingest_rejects"] = erase_rejects(conn, pseudonym, raw_id, key)
    deleted["users"] = conn.execute(sa.text("DELETE FROM users WHERE user_id = :u"), {"u": pseudonym}).rowcount
    conn.execute(
        sa.text("INSERT INTO forgotten_users (user_id) VALUES (:u) ON CONFLICT (user_id) DO NOTHING"), {"u": pseudonym}
    )
    # aspect words come from reviews (a user's own nouns among them): the next build regroups
    # the aspects of the reviews that remain
    deleted["aspect_groups"] = conn.execute(sa.text("DELETE FROM aspect_groups")).rowcount
    last_build = conn.execute(sa.text("SELECT max(as_of) FROM feature_builds")).scalar()
    if items and last_build is not None:  # the items as the last build saw them, less this user
        rebuild_items(conn, items, last_build)
    return deleted, items


def erase_rejects(conn, pseudonym: str, raw_id: str, key: bytes) -> int:
    """Rejected lines of the user: those whose user was located (by pseudonym) and
    any other whose sealed text holds the raw id (unsealed here, one by one)."""

    n = conn.execute(sa.text("DELETE FROM ingest_rejects WHERE user_id = :u"), {"u": pseudonym}).rowcount
    holding = []
    result = conn.execute(
        sa.text(
            "SELECT reject_id, raw_sealed FROM ingest_rejects WHERE user_id IS NULL AND raw_sealed IS NOT NULL"
        ).execution_options(yield_per=1000)  # this statement only: a server-side cursor, constant memory
    )
    for reject_id, sealed in result:
        try:
            if raw_id in unseal(sealed, key):
                holding.append(reject_id)
        except ValueError:
            continue  # sealed under another key: not readable, so it cannot be searched (docs/guides/operations.md says)
    if holding:
        n += conn.execute(sa.text("DELETE FROM ingest_rejects WHERE reject_id = ANY(:ids)"), {"ids": holding}).rowcount
    return n


def delete_online(store, join_key: str, values: list[str], views: tuple[str, ...]) -> str:
    """Delete the entities' rows of these views from the online store (PostgreSQL or
    Redis; in Redis an entity's views share one key, so the key goes)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    keys = [EntityKey(join_keys=[join_key], entity_values=[Value(string_val=v)]) for v in values]
    config = store.config
    version = config.entity_key_serialization_version
    if config.online_store.type == "redis":
        import redis

        host, _, rest = config.online_store.connection_string.partition(",")
        options = dict(kv.split("=", 1) for kv in rest.split(",") if "=" in kv)
        client = redis.Redis(
            host=host.split(":")[0],
            port=int(host.split(":")[1]),
            db=int(options.get("db", 0)),
            password=options.get("password"),
        )
        n = client.delete(*(redis_key(config.project, k, version) for k in keys)) if keys else 0
        return f"redis: {n} keys deleted"
    from portrait.featurestore.repo import pg_connect

    serialized = [serialize_entity_key(k, entity_key_serialization_version=version) for k in keys]
    total = 0
    with pg_connect(config.online_store) as conn:
        for view in views:
            table = postgres_online_table(config, store.get_feature_view(view))
            total += conn.execute(f'DELETE FROM "{table}" WHERE entity_key = ANY(%s)', (serialized,)).rowcount
    return f"postgres: {total} rows deleted"


def erase_online(store, pseudonym: str) -> str:
    """Delete the user's rows from the online store."""
    return delete_online(store, "user_id", [pseudonym], USER_VIEWS)


def refresh_online_items(store, engine: sa.Engine, items: list[str]) -> str:
    """Write the recomputed items' latest snapshots to the online store: an
    incremental materialize would not (their timestamps are old), and Redis keeps a
    newer value over an older one, so the items' rows go first."""
    delete_online(store, "item_id", items, ITEM_VIEWS)
    with engine.connect() as conn:
        for view in ITEM_VIEWS:
            frame = pd.read_sql_query(
                sa.text(
                    f"SELECT DISTINCT ON (item_id) * FROM {view} WHERE item_id = ANY(:i) ORDER BY item_id, event_timestamp DESC"
                ),
                conn,
                params={"i": items},
            )
            if not frame.empty:
                store.write_to_online_store(view, frame)
    return f"{len(items)} items refreshed"


def forget(engine: sa.Engine, store, raw_id: str, key: bytes) -> ForgetReport:
    """Erase offline (one transaction), then online; write the audit row."""

    pseudonym = pseudonymize(raw_id, key)
    with engine.begin() as conn:
        deleted, items = erase_offline(conn, pseudonym, raw_id.strip(), key)
    if store is None:
        online = "no online store configured"
    else:
        online = erase_online(store, pseudonym)
        if items:
            online += "; " + refresh_online_items(store, engine, items)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO forget_audit (rows_deleted, online_store) VALUES (CAST(:d AS jsonb), :o)"),
            {"d": json.dumps(deleted), "o": online},
        )
    return ForgetReport(deleted, online)
