"""Shared helpers for the benchmarks: a scratch database on the profile's server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

from portrait import database, migrate
from portrait.settings import Settings, get_settings


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
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()
