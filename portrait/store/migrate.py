"""Alembic migrations (migrations/ in the repo) run on the profile's database."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from portrait.settings import REPO_ROOT, Settings
from portrait.store import database


def alembic_config() -> Config:
    return Config(str(REPO_ROOT / "alembic.ini"))


def _with_connection(settings: Settings, action) -> None:
    engine = database.engine(settings)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            action(cfg)
    finally:
        engine.dispose()


def upgrade(settings: Settings, revision: str = "head") -> None:
    _with_connection(settings, lambda cfg: command.upgrade(cfg, revision))


def downgrade(settings: Settings, revision: str = "base") -> None:
    _with_connection(settings, lambda cfg: command.downgrade(cfg, revision))


def current_revision(settings: Settings) -> str | None:
    engine = database.engine(settings)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
