"""Alembic environment: the URL comes from Portrait's settings (local or external
profile) unless the caller passed a connection."""

from __future__ import annotations

from alembic import context

from portrait.settings import get_settings
from portrait.store import database

config = context.config
# Migrations are written by hand and are the one definition of the schema.
target_metadata = None


def run_migrations_offline() -> None:
    url = database.server_url(get_settings()).render_as_string(hide_password=False)
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    database.ensure_running(get_settings())  # `alembic upgrade head` after a reboot
    engine = database.engine(get_settings())
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
