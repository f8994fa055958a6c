"""What every `portrait` command module shares: the group class that turns user errors
into one line, the profile's database and MLflow, started or configured on demand,
and time parsing. Heavy imports (feast, torch, mlflow) stay inside the commands."""

from __future__ import annotations

import click

from portrait.settings import SettingsError

# psycopg's errors for a schema older than the code (SQLSTATE 42P01, 42703)
_SCHEMA_BEHIND = {"UndefinedTable", "UndefinedColumn"}


class PortraitGroup(click.Group):
    """Turns the errors users can fix (settings, missing files, an unmigrated database)
    into one clear line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (SettingsError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None
        except Exception as err:
            behind = schema_behind(err)
            if behind is None:
                raise
            raise click.ClickException(behind) from None


def schema_behind(err: BaseException) -> str | None:
    """The line for a database whose schema lacks a table or column the code reads
    (never migrated, or migrated by an older checkout), else None. Looks through the
    chain (SQLAlchemy and pandas wrap psycopg's error)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for candidate in (current, getattr(current, "orig", None)):
            if type(candidate).__name__ in _SCHEMA_BEHIND:
                what = (str(candidate).strip().splitlines() or ["no detail"])[0]
                return f"the database schema is behind this code ({what}): run `portrait db migrate`"
        current = current.__cause__ or current.__context__
    return None


def running(settings):
    """The profile's database server, started first in the local profile (after a reboot)."""
    from portrait.store import database

    database.ensure_running(settings)
    return settings


def connect(settings, **kwargs):
    from portrait.store import database

    return database.engine(running(settings), **kwargs)


def track(settings) -> str:
    """MLflow pointed at this profile (its tracking database lives on the profile's server)."""
    from registry import tracking

    return tracking.configure(running(settings))


def parse_time(value: str | None):
    from datetime import datetime, timezone

    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2014-07-01T00:00:00)") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
