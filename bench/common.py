"""Shared helpers for the benchmarks: scratch databases on the profile's server
(the app's, and Feast's registry + online store), and the online rows Feast writes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

from portrait.settings import Settings, get_settings
from portrait.store import database, migrate


@contextlib.contextmanager
def scratch_database() -> Iterator[Settings]:
    """A migrated throwaway database (dropped afterwards) on the profile's server."""
    base = get_settings()
    admin = database.server_url(base, "postgres") if base.profile == "external" else None
    if admin is None:
        database.up(base)
        admin = database.server_url(base, "postgres")
    name = f"portrait_bench_{uuid.uuid4().hex[:8]}"
    database.create_database(admin, name)
    url = admin.set(database=name).render_as_string(hide_password=False)
    settings = Settings(state_dir=base.state_dir, database_url=url, id_key="bench-pseudonymization-key-32-bytes-long")
    try:
        migrate.upgrade(settings)
        yield settings
    finally:
        drop_database(admin, name)


def drop_database(admin, name: str) -> None:
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


@contextlib.contextmanager
def scratch_feast(settings: Settings) -> Iterator[dict[str, str]]:
    """A throwaway database for Feast's registry and PostgreSQL online store (dropped
    afterwards); yields the featurestore overrides that point Feast at it."""
    name = f"portrait_bench_feast_{uuid.uuid4().hex[:8]}"
    admin = database.server_url(settings)
    database.create_database(admin, name)
    try:
        yield {
            "PORTRAIT_FEAST_DATABASE": name,
            "PORTRAIT_FEAST_REGISTRY_URL": admin.set(database=name).render_as_string(hide_password=False),
        }
    finally:
        drop_database(admin, name)


def online_rows(engine) -> int:
    """Rows Feast writes per full materialization: the latest row of each entity per online view."""
    with engine.connect() as conn:
        return sum(
            conn.execute(sa.text(f"SELECT count(DISTINCT {key}) FROM {table}")).scalar()
            for table, key in (
                ("user_behavior", "user_id"),
                ("user_text_profile", "user_id"),
                ("item_stats", "item_id"),
                ("item_text_profile", "item_id"),
            )
        )


def engine(settings: Settings):
    """An engine on the profile's server, the embedded one started first if needed."""
    database.ensure_running(settings)
    return database.engine(settings)
