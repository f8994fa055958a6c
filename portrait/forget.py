"""The right to be forgotten: erase one user from raw tables, feature tables and
the online store, and keep an audit row that holds no id.

Left in place, by design: item-level aggregates (item_stats, item_text_profile)
are statistics over many users' reviews and carry no user id; they lose the
user's contribution at the next rebuild of those items. MLflow datasets hold
review texts and labels without user ids (see README)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

USER_VIEWS = ("user_behavior", "user_text_profile")


@dataclass
class ForgetReport:
    rows_deleted: dict[str, int]
    online_store: str

    @property
    def found(self) -> bool:
        return any(self.rows_deleted.values())


def erase_offline(conn, pseudonym: str) -> dict[str, int]:
    """Delete every row of the user; reviews cascade to their embeddings."""
    deleted: dict[str, int] = {}
    for table, where in (
        ("review_embeddings", "user_id = :u"),
        ("user_behavior", "user_id = :u"),
        ("user_text_profile", "user_id = :u"),
        ("events", "user_id = :u"),
        ("reviews", "user_id = :u"),
        ("ingest_rejects", "raw LIKE '%' || :u || '%'"),  # a rejected line keeps the pseudonym
        ("users", "user_id = :u"),
    ):
        deleted[table] = conn.execute(sa.text(f"DELETE FROM {table} WHERE {where}"), {"u": pseudonym}).rowcount
    return deleted


def erase_online(store, pseudonym: str) -> str:
    """Delete the user's rows from the online store (PostgreSQL or Redis)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=pseudonym)])
    config = store.config
    version = config.entity_key_serialization_version
    if config.online_store.type == "redis":
        import redis

        from portrait.feast_private import redis_key

        host, _, rest = config.online_store.connection_string.partition(",")
        options = dict(kv.split("=", 1) for kv in rest.split(",") if "=" in kv)
        client = redis.Redis(
            host=host.split(":")[0],
            port=int(host.split(":")[1]),
            db=int(options.get("db", 0)),
            password=options.get("password"),
        )
        n = client.delete(redis_key(config.project, key, version))
        return f"redis: {n} key deleted"
    from portrait.feast_private import postgres_online_table
    from portrait.featurestore import pg_connect

    cfg = config.online_store
    entity_key = serialize_entity_key(key, entity_key_serialization_version=version)
    total = 0
    with pg_connect(cfg) as conn:
        for view in USER_VIEWS:
            table = postgres_online_table(config.project, store.get_feature_view(view))
            total += conn.execute(f'DELETE FROM "{table}" WHERE entity_key = %s', (entity_key,)).rowcount
    return f"postgres: {total} rows deleted"


def forget(engine: sa.Engine, store, pseudonym: str) -> ForgetReport:
    """Erase offline (one transaction), then online; write the audit row."""
    with engine.begin() as conn:
        deleted = erase_offline(conn, pseudonym)
    online = erase_online(store, pseudonym) if store is not None else "no online store configured"
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO forget_audit (rows_deleted, online_store) VALUES (CAST(:d AS jsonb), :o)"),
            {"d": json.dumps(deleted), "o": online},
        )
    return ForgetReport(deleted, online)
