"""Throwaway databases on the external server (the production profile): created per test session, dropped after."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa


def require_external(name: str) -> str:
    """The external server's URL; skipped locally when unset, an error in CI."""
    url = os.environ.get(name)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not set: CI must test the production profile")
        pytest.skip(f"{name} is not set")
    return url


def fresh_external_database(base_url: str) -> tuple[str, str]:
    from portrait.store.database import DRIVER, create_database

    admin = sa.engine.make_url(base_url).set(drivername=DRIVER)
    name = f"portrait_test_{uuid.uuid4().hex[:8]}"
    create_database(admin, name)
    return admin.set(database=name).render_as_string(hide_password=False), name


def drop_external_database(base_url: str, name: str) -> None:
    from portrait.store.database import DRIVER

    admin = sa.engine.make_url(base_url).set(drivername=DRIVER)
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()
